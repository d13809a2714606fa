/**
 * The region's half of the message path alone, on the real engines, with the edge replaced by
 * stand-ins: a fake ConversationDO outbox per conversation posts signed /internal/events (one
 * request in flight per conversation, batching what piled up meanwhile, as the real one does),
 * and a fake edge answers /internal/deliver after BENCH_EDGE_MS. Measures, per message, its
 * sequencing time → the region's answer (store + publish) and → arrival at the fake edge
 * (fan-out), at fixed open-loop rates, plus the region's own stage histograms. Without workerd in
 * the loop, this isolates what the region's code and engines cost, and compares region builds.
 *
 *   npx tsx scripts/bench/region-fanout.ts
 *   BENCH_RATES=200,500,1000 BENCH_SECONDS=10 BENCH_EDGE_MS=30 npx tsx scripts/bench/region-fanout.ts
 *
 * Writes .bench/region-fanout.json (BENCH_OUT).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { deliveriesByGateway, signRequest, type DeliverRequest } from '@switchboard/protocol';
import { freePort } from '../lib/ports.ts';
import { ROOT, startRegion, type Service } from '../lib/processes.ts';
import { removeNamespace } from './cleanup.ts';
import { dist, type Dist } from './load.ts';
import { diffScrape, inMs, parseProm, regionAge, regionOp, summarizeHist, type HistSummary, type Scrape } from './prom.ts';

const env = (k: string, d: string) => process.env[k]?.trim() || d;
const CFG = {
  rates: env('BENCH_RATES', '200,500,1000').split(',').map(Number),
  seconds: Number(env('BENCH_SECONDS', '10')),
  pairs: Number(env('BENCH_PAIRS', '50')),
  edgeMs: Number(env('BENCH_EDGE_MS', '30')),
  bodyBytes: Number(env('BENCH_BODY_BYTES', '200')),
  drainSeconds: Number(env('BENCH_DRAIN_SECONDS', '15')),
  out: path.resolve(ROOT, env('BENCH_OUT', '.bench/region-fanout.json')),
};
if (CFG.rates.some((r) => !(r > 0)) || !(CFG.seconds > 0) || !(CFG.pairs >= 1) || !(CFG.edgeMs >= 0)) {
  console.error('region-fanout: BENCH_RATES, BENCH_SECONDS, BENCH_PAIRS, BENCH_EDGE_MS must be positive numbers');
  process.exit(2);
}
const progress = (m: string) => process.stderr.write(`region-fanout: ${m}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let region: Service | null = null;
let edgeServer: http.Server | null = null;
let stopping = false;
const stopAll = async () => {
  stopping = true;
  edgeServer?.close();
  await region?.stop();
};
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));
process.on('SIGTERM', () => void stopAll().then(() => process.exit(143)));
process.on('exit', () => region?.kill());

interface Pending {
  ts: number;
  answeredAt?: number;
  deliveredAt?: number;
}

async function main(): Promise<void> {
  const load = os.loadavg().map((x) => Math.round(x * 100) / 100);
  progress(`load average ${load.join(' ')}; rates ${CFG.rates.join(', ')} msg/s × ${CFG.seconds} s, ${CFG.pairs} conversations, edge answers after ${CFG.edgeMs} ms`);
  const { ensureStack } = await import('../stack/index.ts');
  const stack = await ensureStack({ log: () => {} });
  const namespace = `benchf_${crypto.randomBytes(4).toString('hex')}`;
  const engineEnv = {
    CASSANDRA_CONTACT_POINTS: stack.cassandra.contactPoints.join(','),
    CASSANDRA_LOCAL_DC: stack.cassandra.localDataCenter,
    KAFKA_BROKERS: stack.kafka.brokers.join(','),
    REDIS_URL: stack.redis.url,
  };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-benchf-'));
  const secret = crypto.randomBytes(24).toString('base64url');

  // The fake edge: records when each (conv, seq) reached it, answers after edgeMs.
  let pending = new Map<string, Pending>();
  let deliverRequests = 0;
  const edgePort = await freePort();
  edgeServer = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      const at = Date.now();
      deliverRequests++;
      // As the edge does: one batch per gateway, each recipient pointing at its message in it
      // (a batch's msgs are indexes into the request's).
      const req = JSON.parse(body) as DeliverRequest;
      const deliveries = [...deliveriesByGateway(req).values()].flatMap((b) => b.to.map((t) => ({ user: t.user, msg: req.msgs[b.msgs[t.m]!]! })));
      for (const d of deliveries) {
        if (!d.user.startsWith('r')) continue; // the recipient's copy
        const p = pending.get(`${d.msg.conv}/${d.msg.seq}`);
        if (p && p.deliveredAt === undefined) p.deliveredAt = at;
      }
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ users: deliveries.length, sockets: deliveries.length }));
      }, CFG.edgeMs);
    });
  });
  await new Promise<void>((r) => edgeServer!.listen(edgePort, '127.0.0.1', r));
  const edgeUrl = `http://127.0.0.1:${edgePort}`;

  progress(`region on the real engines (NAMESPACE=${namespace}) …`);
  const regionPort = await freePort();
  region = await startRegion({
    port: regionPort,
    dataDir: path.join(dir, 'region'),
    internalSecret: secret,
    env: { ...engineEnv, NAMESPACE: namespace, LOG_LEVEL: 'warn' },
    sink: () => {},
  });
  const post = async (p: string, payload: unknown) => {
    const body = JSON.stringify(payload);
    const res = await fetch(region!.url + p, { method: 'POST', headers: { 'content-type': 'application/json', ...(await signRequest(secret, 'POST', p, body)) }, body, signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new Error(`${p}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
    return res.json();
  };
  const scrape = async (): Promise<Scrape> => parseProm(await (await fetch(region!.url + '/metrics')).text());

  // Routes and conversations, as the gateways and ConversationDOs would have sent them: each user
  // on one of 16 gateways, each socket with its own connection id (a gateway starts them from the clock).
  const convs = Array.from({ length: CFG.pairs }, (_, i) => `dbench${i}`);
  const conn0 = Date.now() * 1000;
  await post('/internal/routes', {
    ops: convs.flatMap((_, i) => ['s', 'r'].map((p, j) => ({ op: 'up', user: `${p}${i}`, device: 'd1', edge: edgeUrl, gw: `gw:bench:${(2 * i + j) % 16}`, conn: conn0 + 2 * i + j }))),
  });
  await Promise.all(convs.map((conv, i) => post('/internal/events', { conv, events: [{ kind: 'created', conv, title: null, members: [`s${i}`, `r${i}`], creator: `s${i}`, ts: Date.now() }] })));

  // One outbox per conversation, drained one request at a time (up to 200 events), in seq order.
  const body = 'x'.repeat(CFG.bodyBytes);
  const outbox = convs.map(() => ({ seq: 0, queue: [] as { msg: unknown; key: string }[], draining: false }));
  const drain = async (i: number) => {
    const o = outbox[i]!;
    if (o.draining) return;
    o.draining = true;
    try {
      while (o.queue.length > 0 && !stopping) {
        const batch = o.queue.slice(0, 200);
        try {
          await post('/internal/events', { conv: convs[i], events: batch.map((b) => ({ kind: 'msg', msg: b.msg })) });
        } catch (err) {
          progress(`events for ${convs[i]} failed, retrying: ${(err as Error).message}`);
          await sleep(250);
          continue;
        }
        const at = Date.now();
        for (const b of batch) {
          const p = pending.get(b.key);
          if (p) p.answeredAt = at;
        }
        o.queue.splice(0, batch.length);
      }
    } finally {
      o.draining = false;
    }
  };
  const runPhase = async (rate: number, seconds: number) => {
    pending = new Map();
    const total = Math.round(rate * seconds);
    const start = performance.now() + 20;
    for (let n = 0; n < total; ) {
      const now = performance.now();
      while (n < total && start + (n * 1000) / rate <= now) {
        const i = n % convs.length;
        const o = outbox[i]!;
        const seq = ++o.seq;
        const ts = Date.now();
        const key = `${convs[i]}/${seq}`;
        pending.set(key, { ts });
        o.queue.push({ key, msg: { t: 'msg', conv: convs[i], seq, cmid: `c${seq}`, from: `s${i}`, dev: 'd1', ts, body } });
        void drain(i);
        n++;
      }
      await sleep(Math.max(0, start + (n * 1000) / rate - performance.now()));
    }
    const deadline = Date.now() + CFG.drainSeconds * 1000;
    while (Date.now() < deadline && [...pending.values()].some((p) => p.deliveredAt === undefined)) await sleep(25);
    return [...pending.values()];
  };

  progress('warm-up …');
  await runPhase(100, 3);
  const results: unknown[] = [];
  const f = (d: { p50Ms: number; p95Ms: number; p99Ms: number } | null | undefined) =>
    d ? `${d.p50Ms.toFixed(1).padStart(8)}${d.p95Ms.toFixed(1).padStart(8)}${d.p99Ms.toFixed(1).padStart(8)}` : '       -       -       -';
  for (const rate of CFG.rates) {
    await sleep(1000);
    const loadAtStart = os.loadavg().map((x) => Math.round(x * 100) / 100);
    const before = await scrape();
    const req0 = deliverRequests;
    progress(`${rate} msg/s for ${CFG.seconds} s …`);
    const ps = await runPhase(rate, CFG.seconds);
    const d = diffScrape(before, await scrape());
    const answered: Dist | null = dist(ps.filter((p) => p.answeredAt !== undefined).map((p) => p.answeredAt! - p.ts));
    const delivered: Dist | null = dist(ps.filter((p) => p.deliveredAt !== undefined).map((p) => p.deliveredAt! - p.ts));
    const ages: Record<string, HistSummary | null> = {};
    for (const k of ['region_received', 'stored', 'published', 'fanout_consumed', 'fanout_resolved', 'delivered']) ages[k] = summarizeHist(inMs(d.hists.get(regionAge(k))));
    const ops: Record<string, HistSummary | null> = {};
    for (const k of ['events_request', 'store', 'publish', 'fanout_handler', 'fanout_conversation', 'fanout_routes', 'deliver', 'deliver_request']) ops[k] = summarizeHist(inMs(d.hists.get(regionOp(k))));
    const lost = ps.filter((p) => p.deliveredAt === undefined).length;
    const r = { rate, loadAtStart, messages: ps.length, lost, answered, delivered, ages, ops, deliverRequests: deliverRequests - req0 };
    results.push(r);
    const lines = [
      '',
      `== ${rate} msg/s, ${ps.length} messages, lost ${lost}, deliver requests ${r.deliverRequests} (load average ${loadAtStart.join(' ')})   p50 p95 p99 ms`,
      `  sequenced → region answered (client)     ${f(answered)}`,
      `  sequenced → at the fake edge (client)    ${f(delivered)}`,
      ...Object.entries(ages).map(([k, v]) => `  age at ${k.padEnd(32)}${f(v)}`),
      ...Object.entries(ops).map(([k, v]) => `  op ${k.padEnd(36)}${f(v)}${v ? `  n=${v.count}` : ''}`),
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }
  fs.mkdirSync(path.dirname(CFG.out), { recursive: true });
  fs.writeFileSync(CFG.out, JSON.stringify({ at: new Date().toISOString(), config: { ...CFG, namespace }, loadAvgAtStart: load, results }, null, 2) + '\n');
  progress(`written to ${CFG.out}`);
  await stopAll();
  fs.rmSync(dir, { recursive: true, force: true });
  if (process.env.BENCH_KEEP !== '1') await removeNamespace(namespace, engineEnv).catch((err) => progress(`cleanup incomplete: ${(err as Error).message}`));
}

main().then(
  () => process.exit(0),
  async (err) => {
    progress(`failed: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll();
    process.exit(1);
  },
);
