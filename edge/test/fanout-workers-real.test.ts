import { RAISED_LIMITS } from '../src/limits/limits.ts';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../scripts/lib/ports.ts';
import { startEdge, startRegion, type Service } from '../../scripts/lib/processes.ts';
import { killWorker, spawnWorker } from './region-worker.ts';
import { TestSocket, createConversation, token } from './socket.ts';
import { realEngineEnv } from './system.ts';

/**
 * Worker scale-out on the real engines: the region API alone (REGION_ROLE=api) and two fan-out
 * worker processes (REGION_ROLE=fanout) in one Kafka consumer group. One is killed with SIGKILL
 * in the middle of a stream; every device still shows every message exactly once (after the
 * (conv, seq) dedupe every client does), none missing.
 */
const env = realEngineEnv(`fw_${crypto.randomBytes(3).toString('hex')}`);

/** Records each worker fanned out (its debug log lines), by worker name. */
const handled = new Map<string, number>();

/** A fan-out worker (REGION_ROLE=fanout) whose "fanned out" log lines are counted in `handled`. */
function worker(name: string, vars: Record<string, string>) {
  const { child, ready } = spawnWorker({
    name,
    role: 'fanout',
    vars,
    readyLine: '"msg":"subscribed"',
    onLine: (line) => void (line.includes('"msg":"fanned out"') && handled.set(name, (handled.get(name) ?? 0) + 1)),
  });
  return { child, subscribed: ready };
}

const kill = killWorker;

if (!env) {
  if (process.env.CI === 'true') it('fan-out workers (real engines)', () => assert.fail('CI requires the real engines'));
  else it('fan-out workers (real engines)', { skip: 'real engines not running: npm run stack:up, then npm test' }, () => {});
} else {
  describe('two fan-out workers share the partitions (real engines)', { timeout: 300_000 }, () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-workers-'));
    const internalSecret = crypto.randomBytes(24).toString('base64url');
    const authSecret = crypto.randomBytes(24).toString('base64url');
    const services: Service[] = [];
    const workers: ChildProcess[] = [];
    const sockets: TestSocket[] = [];
    let edgeUrl = '';

    before(async () => {
      const vars = { ...env, INTERNAL_SECRET: internalSecret, DATA_DIR: path.join(dir, 'region'), LOG_LEVEL: 'warn' };
      const api = await startRegion({ port: await freePort(), dataDir: vars.DATA_DIR, internalSecret, env: { ...env, REGION_ROLE: 'api', LOG_LEVEL: 'warn' } });
      services.push(api);
      const w = [worker('fanout-1', vars), worker('fanout-2', vars)];
      workers.push(...w.map((x) => x.child));
      await Promise.all(w.map((x) => x.subscribed));
      const edge = await startEdge({ port: await freePort(), regionUrl: api.url, persistDir: path.join(dir, 'edge'), authSecret, internalSecret, devAuth: true, vars: { ...RAISED_LIMITS, RETRANSMIT_MS: '1000' } });
      services.push(edge);
      edgeUrl = edge.url;
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      for (const w of workers) kill(w, 'SIGTERM');
      for (const s of services.reverse()) await s.stop().catch(() => {});
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('kill -9 one worker mid-stream: nothing lost, nothing shown twice on any device', async () => {
      const CONVS = 8;
      const PER_CONV = 25;
      const convs: string[] = [];
      const receivers: TestSocket[][] = [];
      const senders: TestSocket[] = [];
      for (let c = 0; c < CONVS; c++) {
        const users = [`ws${c}a`, `ws${c}b`, `ws${c}c`];
        convs.push((await createConversation(edgeUrl, await token(edgeUrl, users[0]!, 'setup'), users.slice(1))).id);
        const [s, b, cc] = await Promise.all(users.map(async (u) => TestSocket.open(edgeUrl, await token(edgeUrl, u, 'd1'))));
        sockets.push(s!, b!, cc!);
        senders.push(s!);
        receivers.push([b!, cc!]);
      }
      // Let the group settle with both members before the stream.
      await new Promise((r) => setTimeout(r, 3000));
      const stream = (async () => {
        for (let i = 1; i <= PER_CONV; i++) {
          await Promise.all(senders.map((s, c) => s.request({ t: 'send', conv: convs[c]!, cmid: `m${i}`, body: `m${i}` }, 30_000)));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      // Kill, mid-stream, a worker that is fanning out this stream (whichever holds its partitions).
      const start = new Map(handled);
      const t = (m: Map<string, number>, k: string) => m.get(k) ?? 0;
      const busy = () => ['fanout-1', 'fanout-2'].filter((w) => t(handled, w) > t(start, w) + 2);
      for (let i = 0; i < 200 && busy().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      const victim = busy()[0] ?? 'fanout-1';
      const survivor = victim === 'fanout-1' ? 'fanout-2' : 'fanout-1';
      const before = new Map(handled);
      kill(workers[victim === 'fanout-1' ? 0 : 1]!, 'SIGKILL');
      await stream;
      const want = Array.from({ length: PER_CONV }, (_, i) => i + 1);
      for (let c = 0; c < CONVS; c++) {
        for (const r of receivers[c]!) {
          const seqs = await r.waitSeqs(convs[c]!, PER_CONV, 120_000);
          assert.deepEqual([...seqs].sort((a, b) => a - b), want, `conv ${c}: every seq, each once after dedupe`);
          assert.ok(r.msgs(convs[c]!).every((m) => m.body === `m${m.seq}`), 'each seq carries its own message');
        }
      }
      assert.ok(t(before, victim) > t(start, victim), `the killed worker was fanning out the stream when killed (${JSON.stringify([...before])})`);
      assert.ok(t(handled, survivor) > t(before, survivor), `the survivor took over (${JSON.stringify([...handled])})`);
    });
  });
}
