import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LIMIT_TABLE } from '../src/limits/limits.ts';
import { gatewayName, shardOf } from '../src/gateway/placement.ts';
import { startSystem, type System } from './system.ts';
import { ROOT } from '../../scripts/lib/processes.ts';
import { TestSocket, createConversation, token } from './socket.ts';

/**
 * A device flooding sends as fast as its socket takes them, while another user on the SAME
 * gateway Durable Object pings at a steady rate: that user's ping round trips stay under 20 ms at
 * the 99th percentile (issue 20). Both users are picked so that their ids hash to the same shard
 * (placement.ts), and the test checks it: a gateway holds many users' sockets, so a flood's cost
 * lands on the object that serves its neighbours, which is what this measures. The limits are the
 * production defaults (LIMIT_TABLE), not the suites' raised ones. The figures are printed.
 *
 *   node --import tsx --test edge/test/flood-isolation-embedded.test.ts
 */
const SHARDS = 4;
const FLOOD_MS = 4000;
const PING_EVERY_MS = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('flood isolation (embedded engines)', { timeout: 300_000 }, () => {
  let sys: System;
  const sockets: TestSocket[] = [];
  const open = async (user: string, device: string) => {
    const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device));
    sockets.push(s);
    return s;
  };

  before(async () => {
    const defaults = Object.fromEntries(Object.values(LIMIT_TABLE).map((l) => [l.env, l.default]));
    sys = await startSystem('embedded', { edgeVars: { ...defaults, GATEWAY_SHARDS: String(SHARDS) } });
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await sys?.stop();
  });

  /** Pings one after the other, one every PING_EVERY_MS, until `until()`; the round trips in ms. */
  async function pings(s: TestSocket, until: () => boolean): Promise<number[]> {
    const rtts: number[] = [];
    while (!until()) {
      const t0 = performance.now();
      const f = await s.request({ t: 'ping' }, 10_000);
      const rtt = performance.now() - t0;
      assert.equal(f.t, 'pong');
      rtts.push(rtt);
      await sleep(Math.max(0, PING_EVERY_MS - rtt));
    }
    return rtts.sort((a, b) => a - b);
  }

  it("a device flooding sends never delays another user's pings on its gateway: p99 under 20 ms", async () => {
    const pick = (prefix: string) => Array.from({ length: 200 }, (_, i) => `${prefix}${i}`).find((u) => shardOf(u, SHARDS) === 0)!;
    const [flooder, recipient, bystander] = [pick('flood'), pick('rcpt'), pick('ping')];
    assert.equal(gatewayName('local', flooder, SHARDS), gatewayName('local', bystander, SHARDS), 'the flooder and the pinging user share one gateway');
    const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, flooder, 'setup'), [recipient])).id;
    const [, by] = [await open(recipient, 'r'), await open(bystander, 'b')];

    // Baseline: the same pings with nothing else going on.
    let stop = Date.now() + 1500;
    const quiet = await pings(by, () => Date.now() > stop);

    // The flood, from its own process: send frames as fast as the socket takes them.
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'edge/test/flood-child.ts'), sys.edgeUrl, await token(sys.edgeUrl, flooder, 'f'), conv, String(FLOOD_MS)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += String(d)));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    while (!out.includes('flooding\n')) await sleep(5);
    let floodDone = false;
    void exited.then(() => (floodDone = true));
    const floodEnd = Date.now() + FLOOD_MS;
    // Pings from the moment the flood starts until it ends.
    const loaded = await pings(by, () => floodDone || Date.now() > floodEnd);
    await exited;
    const flood = JSON.parse(out.trim().split('\n').at(-1)!) as { written: number; sent: number; refused: number; other: unknown[]; connects: number; connectRefused: number; closes: Record<string, number> };
    const fig = (xs: number[]) => ({ n: xs.length, p50: +percentile(xs, 50).toFixed(2), p99: +percentile(xs, 99).toFixed(2), max: +xs.at(-1)!.toFixed(2) });
    const report = { gateway: gatewayName('local', bystander, SHARDS), floodMs: FLOOD_MS, flood, quietPingMs: fig(quiet), floodPingMs: fig(loaded) };
    console.log(`flood isolation: ${JSON.stringify(report)}`);

    assert.ok(flood.sent >= 1, 'the burst the limit allows went through');
    assert.ok(flood.refused >= 100, 'the sustained flood was refused with rate_limited');
    assert.deepEqual(flood.other, [], 'nothing but sent and rate_limited');
    assert.ok((flood.closes['4008'] ?? 0) >= 1, 'a socket that kept sending after rate_limited was closed with 4008 (flooding)');
    assert.ok(loaded.length >= 100, `the bystander pinged throughout (${loaded.length} pings)`);
    assert.ok(percentile(loaded, 99) < 20, `bystander ping p99 ${percentile(loaded, 99).toFixed(2)} ms under the flood (quiet: ${percentile(quiet, 99).toFixed(2)} ms)`);
  });
});
