/**
 * `npm run bench:presence`: the region's presence on the real Redis, driven through its signed
 * HTTP API exactly as the edge's gateways call it, with the edge replaced by a fake that records
 * the presence pushes it receives (each event addressed to a gateway, as the region sends them).
 *
 * 1. connects BENCH_DEVICES simulated devices (default 10,000: 5,000 users × 2 devices);
 * 2. steady state, per batch size in BENCH_BATCHES (default "2,200"): heartbeats for every device
 *    in rotation, BENCH_CONCURRENCY requests in flight, for BENCH_SECONDS; reports heartbeats/s
 *    absorbed after a 2 s warm-up. Batch 2 was the SessionDO's shape (one call per user carrying
 *    its devices); a gateway sends one call carrying the devices of all its users, closer to the
 *    larger batches, which also show the Redis side's ceiling;
 * 3. kill: BENCH_KILLED devices (users with one device, each watched by another user who shares a
 *    conversation with them) stop heartbeating at once while the rest keep beating; reports the
 *    time from each one's last heartbeat to its watcher's edge receiving `offline`, and how many
 *    of as many watched users that kept beating were reported offline (must be 0); then the
 *    time from a clean disconnect to the watcher's push.
 *
 * The region runs with PRESENCE_TTL_SECONDS=BENCH_TTL_SECONDS (default 10) and PRESENCE_SWEEP_MS
 * 1000; its storage is the embedded SQLite (presence needs only Redis). Writes .bench/presence.json
 * (BENCH_OUT). Ctrl-C stops cleanly; the run's Redis keys (its own NAMESPACE) are deleted.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { PresenceDeliverRequest, signRequest } from '@switchboard/protocol';
import { freePort } from '../lib/ports.ts';
import { ROOT, startRegion, type Service } from '../lib/processes.ts';
import { deleteByPrefix } from '../../region/src/redis-keys.ts';

const env = (k: string, d: string) => process.env[k]?.trim() || d;
const CFG = {
  devices: Number(env('BENCH_DEVICES', '10000')),
  batches: env('BENCH_BATCHES', '2,200').split(',').map(Number),
  seconds: Number(env('BENCH_SECONDS', '15')),
  concurrency: Number(env('BENCH_CONCURRENCY', '32')),
  killed: Number(env('BENCH_KILLED', '50')),
  ttlSeconds: Number(env('BENCH_TTL_SECONDS', '10')),
  out: path.resolve(ROOT, env('BENCH_OUT', '.bench/presence.json')),
};
const positive = (x: number) => Number.isInteger(x) && x > 0;
if (![CFG.devices, CFG.seconds, CFG.concurrency, CFG.killed, CFG.ttlSeconds, ...CFG.batches].every(positive) || CFG.devices < 2 || CFG.ttlSeconds < 2) {
  console.error('bench:presence: BENCH_DEVICES (≥2), BENCH_BATCHES, BENCH_SECONDS, BENCH_CONCURRENCY, BENCH_KILLED, BENCH_TTL_SECONDS (≥2) must be positive integers');
  process.exit(2);
}
const progress = (m: string) => process.stderr.write(`bench:presence: ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let region: Service | null = null;
let edgeServer: http.Server | null = null;
let stopping = false;
let cleanup: (() => Promise<void>) | null = null;
let interrupted = false;
const onSignal = (code: number) => {
  // One Ctrl-C may arrive twice (terminal group and tsx's relay): stop once.
  if (interrupted) return;
  interrupted = true;
  stopping = true;
  progress('stopping …');
  void (async () => {
    edgeServer?.close();
    await region?.stop();
    await cleanup?.().catch((err) => progress(`cleanup failed: ${(err as Error).message}`));
    process.exit(code);
  })();
};
process.on('SIGINT', () => onSignal(130));
process.on('SIGTERM', () => onSignal(143));
process.on('exit', () => region?.kill());

const pct = (xs: number[], p: number) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const dist = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p90: pct(xs, 90), p99: pct(xs, 99), max: xs.length ? Math.max(...xs) : null });

async function main(): Promise<void> {
  const load = os.loadavg().map((x) => Math.round(x * 100) / 100);
  progress(`load average ${load.join(' ')} on ${os.cpus().length} cores; ${CFG.devices} devices, batches ${CFG.batches.join(', ')}, ${CFG.seconds} s each, TTL ${CFG.ttlSeconds} s`);
  const { ensureStack } = await import('../stack/index.ts');
  const stack = await ensureStack({ log: () => {} });
  const namespace = `benchp_${crypto.randomBytes(4).toString('hex')}`;
  const redisUrl = stack.redis.url;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-benchp-'));
  const secret = crypto.randomBytes(24).toString('base64url');
  cleanup = async () => {
    fs.rmSync(dir, { recursive: true, force: true });
    const { Redis } = await import('ioredis');
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    try {
      await deleteByPrefix(redis, `${namespace}:`);
    } finally {
      redis.disconnect();
    }
  };

  // The fake edge: when each user's offline/online reached its watcher.
  const received: { user: string; status: string; at: number }[] = [];
  let rejectedPushes = 0;
  const edgePort = await freePort();
  edgeServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const at = Date.now();
      // As the edge does: a body that is not a valid PresenceDeliverRequest (each event naming its gateway) is refused.
      const parsed = PresenceDeliverRequest.safeParse(JSON.parse(body));
      if (!parsed.success) {
        rejectedPushes++;
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'invalid_frame', message: parsed.error.issues[0]?.message ?? 'invalid' } }));
        return;
      }
      for (const e of parsed.data.events) received.push({ user: e.user, status: e.status, at });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"users":1,"sockets":1}');
    });
  });
  await new Promise<void>((r) => edgeServer!.listen(edgePort, '127.0.0.1', r));
  const edgeUrl = `http://127.0.0.1:${edgePort}`;

  progress(`region with presence on Redis ${redisUrl} (NAMESPACE=${namespace}) …`);
  region = await startRegion({
    port: await freePort(),
    dataDir: path.join(dir, 'region'),
    internalSecret: secret,
    env: { REDIS_URL: redisUrl, NAMESPACE: namespace, LOG_LEVEL: 'warn', PRESENCE_TTL_SECONDS: String(CFG.ttlSeconds), PRESENCE_SWEEP_MS: '1000' },
    sink: () => {},
  });
  const post = async (p: string, payload: unknown) => {
    const body = JSON.stringify(payload);
    const res = await fetch(region!.url + p, { method: 'POST', headers: { 'content-type': 'application/json', ...(await signRequest(secret, 'POST', p, body)) }, body, signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new Error(`${p}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    return res.json() as Promise<Record<string, unknown>>;
  };

  // Devices: users u0…, two devices each; the last CFG.killed users have one device and a watcher.
  type Dev = { user: string; device: string };
  const devs: Dev[] = [];
  const killedUsers: string[] = [];
  for (let i = 0; devs.length < CFG.devices; i++) {
    const single = killedUsers.length < CFG.killed;
    const user = `${single ? 'k' : 'u'}${i}`;
    if (single) killedUsers.push(user);
    devs.push({ user, device: 'd1' });
    if (!single && devs.length < CFG.devices) devs.push({ user, device: 'd2' });
  }
  progress(`connecting ${devs.length} devices …`);
  for (let i = 0; i < devs.length && !stopping; i += 500) await post('/internal/presence', { ops: devs.slice(i, i + 500).map((d) => ({ op: 'connect', ...d })) });
  // A control group of live users, watched too: they keep beating and must never show offline.
  const controlUsers = [...new Set(devs.filter((d) => d.user.startsWith('u')).map((d) => d.user))].slice(0, CFG.killed);
  progress(`watchers for ${killedUsers.length} users to kill and ${controlUsers.length} that stay …`);
  let watchers = 0; // each watcher's socket on one of 16 gateways of the fake edge
  await Promise.all(
    [...killedUsers, ...controlUsers].map(async (k) => {
      const conv = `c${k}`;
      await post('/internal/events', { conv, events: [{ kind: 'created', conv, title: null, members: [k, `w${k}`], creator: k, ts: Date.now() }] });
      const r = await post('/internal/watch', { user: `w${k}`, device: 'w', edge: edgeUrl, gw: `gw:bench:${watchers++ % 16}`, watch: [k] });
      if (!r.ok) throw new Error(`watch refused: ${JSON.stringify(r)}`);
    }),
  );

  // Heartbeats in rotation over `pool`, `batch` devices per call, CONCURRENCY calls in flight.
  let pool = devs;
  let cursor = 0;
  const lastBeat = new Map<string, number>();
  const beatLoop = (batch: number, until: () => boolean, onAck: (n: number, at: number) => void) =>
    Promise.all(
      Array.from({ length: CFG.concurrency }, async () => {
        while (!until() && !stopping) {
          const chunk: Dev[] = [];
          for (let j = 0; j < batch; j++) chunk.push(pool[(cursor++ % pool.length)]!);
          const sentAt = Date.now();
          for (const d of chunk) if (d.device === 'd1') lastBeat.set(d.user, sentAt);
          await post('/internal/presence', { ops: chunk.map((d) => ({ op: 'beat', ...d })) });
          onAck(chunk.length, Date.now());
        }
      }),
    );

  const phases: { batch: number; beatsPerSecond: number; requestsPerSecond: number; cycleSeconds: number }[] = [];
  for (const batch of CFG.batches) {
    if (stopping) break;
    const t0 = Date.now();
    const warm = t0 + 2_000;
    const end = t0 + CFG.seconds * 1000;
    let beats = 0;
    let requests = 0;
    const ticker = setInterval(() => progress(`batch ${batch}: ${Math.round((Date.now() - t0) / 1000)}/${CFG.seconds} s, ${beats} heartbeats counted`), 1000);
    await beatLoop(batch, () => Date.now() >= end, (n, at) => {
      if (at >= warm) (beats += n), requests++;
    });
    clearInterval(ticker);
    const secs = (Date.now() - warm) / 1000;
    const rate = beats / secs;
    phases.push({ batch, beatsPerSecond: Math.round(rate), requestsPerSecond: Math.round(requests / secs), cycleSeconds: Math.round((devs.length / rate) * 100) / 100 });
    progress(`batch ${batch}: ${Math.round(rate)} heartbeats/s (${Math.round(requests / secs)} requests/s)`);
  }

  // Kill: the watched users' devices stop beating; everyone else keeps beating at the edge's shape.
  const killed = new Set(killedUsers);
  const control = new Set(controlUsers);
  // Everyone beats afresh first (a slow steady phase may have let devices expire), then the
  // killed ones stop while the rest keep beating with the largest batch.
  for (let i = 0; i < devs.length && !stopping; i += 500) await post('/internal/presence', { ops: devs.slice(i, i + 500).map((d) => ({ op: 'beat', ...d })) });
  const t = Date.now();
  for (const k of killedUsers) lastBeat.set(k, t);
  await sleep(1_500);
  received.length = 0;
  pool = devs.filter((d) => !killed.has(d.user));
  const killAt = Date.now();
  let killing = true;
  const background = beatLoop(Math.max(...CFG.batches), () => !killing, () => {});
  const killDone = () => killedUsers.every((k) => received.some((r) => r.user === k && r.status === 'offline'));
  progress(`${killedUsers.length} devices killed (heartbeats stop); waiting for their watchers to see offline …`);
  const deadline = killAt + (CFG.ttlSeconds + 30) * 1000;
  while (!killDone() && Date.now() < deadline && !stopping) {
    await sleep(200);
    const seen = received.filter((r) => killed.has(r.user) && r.status === 'offline').length;
    progress(`  ${seen}/${killedUsers.length} offline after ${((Date.now() - killAt) / 1000).toFixed(1)} s`);
  }
  killing = false;
  await background;
  const killLatency = killedUsers.flatMap((k) => {
    const r = received.find((x) => x.user === k && x.status === 'offline');
    return r ? [r.at - lastBeat.get(k)!] : [];
  });
  const spurious = received.filter((r) => r.status === 'offline' && control.has(r.user)).length;

  // Clean disconnect: bring them back, then `down` each; the push should follow at once.
  progress('clean disconnects …');
  await post('/internal/presence', { ops: killedUsers.map((user) => ({ op: 'connect', user, device: 'd1' })) });
  const cleanLatency: number[] = [];
  for (const k of killedUsers) {
    if (stopping) break;
    const t = Date.now();
    await post('/internal/presence', { ops: [{ op: 'down', user: k, device: 'd1' }] });
    const until = Date.now() + 5_000;
    let hit;
    while (!(hit = received.find((r) => r.user === k && r.status === 'offline' && r.at >= t)) && Date.now() < until) await sleep(2);
    if (hit) cleanLatency.push(hit.at - t);
  }

  const result = {
    at: new Date().toISOString(),
    machine: { cores: os.cpus().length, loadAverage: load },
    config: { devices: devs.length, seconds: CFG.seconds, concurrency: CFG.concurrency, ttlSeconds: CFG.ttlSeconds, sweepMs: 1000, path: 'signed HTTP /internal/presence → region → Redis' },
    steadyState: phases,
    killedToOfflineMs: { ...dist(killLatency), missing: killedUsers.length - killLatency.length, beyondTtl: dist(killLatency.map((x) => x - CFG.ttlSeconds * 1000)) },
    cleanCloseToOfflineMs: dist(cleanLatency),
    controlUsers: controlUsers.length,
    controlReportedOffline: spurious,
    rejectedPushes,
  };
  fs.mkdirSync(path.dirname(CFG.out), { recursive: true });
  fs.writeFileSync(CFG.out, JSON.stringify(result, null, 2) + '\n');
  console.log('\npresence on Redis, through the region HTTP API');
  for (const p of phases) console.log(`  batch ${String(p.batch).padStart(4)}: ${p.beatsPerSecond} heartbeats/s absorbed (${p.requestsPerSecond} req/s); all ${devs.length} devices refreshed every ${p.cycleSeconds} s`);
  const k = result.killedToOfflineMs;
  console.log(`  killed → watcher sees offline (TTL ${CFG.ttlSeconds} s): p50 ${k.p50} ms, p99 ${k.p99} ms, max ${k.max} ms (beyond TTL: p50 ${k.beyondTtl.p50}, max ${k.beyondTtl.max} ms); missing ${k.missing}`);
  console.log(`  clean close → watcher sees offline: p50 ${result.cleanCloseToOfflineMs.p50} ms, p99 ${result.cleanCloseToOfflineMs.p99} ms`);
  console.log(`  watched users that kept beating but were reported offline: ${spurious} of ${controlUsers.length}`);
  if (rejectedPushes) console.log(`  presence pushes the fake edge refused as malformed: ${rejectedPushes}`);
  console.log(`  written to ${path.relative(ROOT, CFG.out)}`);
  edgeServer.close();
  await region.stop();
  region = null;
  await cleanup();
  progress('Redis keys removed');
}

main().catch(async (err) => {
  progress(`failed: ${(err as Error).message}`);
  edgeServer?.close();
  await region?.stop();
  await cleanup?.().catch(() => {});
  process.exit(1);
});
