/**
 * `npm run bench:fanout`: one group of FANOUT_MEMBERS (default 1,000) members, every member
 * connected (one socket each), one extra device of the first member sending at fixed rates
 * (open loop, FANOUT_RATES msg/s, FANOUT_SECONDS each). For every (message, recipient) it
 * measures due time → arrival, and deliveries per second over all recipients. Beside it, in
 * the same run, the baseline: one Node process (scripts/bench/broadcast-server.ts) broadcasting
 * to the same number of sockets. Writes .bench/fanout.json.
 *
 * Recipients ack cumulatively at most every FANOUT_ACK_MS (default 250 ms), as a client
 * batching its acks would. FANOUT_WARMUP (default 5) unmeasured messages go first, one every
 * 200 ms, and the phases start once every member has them (the warm-up is logged, not scored). `--real` runs the region on the real engines of `npm run stack:up`.
 * BENCH_EDGE_STATE=disk|tmpfs says where the edge keeps its Durable Objects' storage (edge-state.ts).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { freePort } from '../lib/ports.ts';
import { ROOT, startEdge, startRegion, type Service } from '../lib/processes.ts';
// Benches measure capacity, not the rate limits (edge/src/limits/limits.ts): raised for them.
import { BENCH_EDGE_VARS } from './edge-vars.ts';
import { cpuPercent, cpuSnapshot, type Target } from './cpu.ts';
import { edgeState, edgeStateDir } from './edge-state.ts';
import { dist, type Dist } from './load.ts';
import { diffScrape, inMs, parseProm, regionAge, regionCounterName, regionOp, summarizeHist, type HistSummary, type Scrape } from './prom.ts';

const MEMBERS = Number(process.env.FANOUT_MEMBERS || 1000);
const RATES = (process.env.FANOUT_RATES || '5,10,30').split(',').map(Number);
const SECONDS = Number(process.env.FANOUT_SECONDS || 5);
const ACK_MS = Number(process.env.FANOUT_ACK_MS || 250);
/** Unmeasured messages first, one every 200 ms, until every member has them: cold objects and caches warm up. */
const WARMUP = Number(process.env.FANOUT_WARMUP ?? 5);
const REAL = process.argv.includes('--real');
const OUT = path.resolve(ROOT, process.env.BENCH_OUT || '.bench/fanout.json');
const EDGE_STATE = edgeState();

interface Phase {
  rate: number;
  seconds: number;
  messages: number;
  recipients: number;
  expected: number;
  delivered: number;
  duplicates: number;
  lost: number;
  deliveriesPerSec: number;
  e2e: Dist | null;
  /** Switchboard only: the region's stage figures over the phase, and CPU % of one core per process. */
  hops?: Record<string, HistSummary | null>;
  counters?: Record<string, number>;
  cpuPercent?: Record<string, number | null>;
}

/** Region histograms worth showing for a fan-out phase: message ages (ms since sequencing) and stage durations. */
const HOPS: [string, string][] = [
  ['msg_age:region_received', regionAge('region_received')],
  ['msg_age:published', regionAge('published')],
  ['msg_age:fanout_consumed', regionAge('fanout_consumed')],
  ['msg_age:fanout_resolved', regionAge('fanout_resolved')],
  ['msg_age:delivered', regionAge('delivered')],
  ['op:fanout_handler', regionOp('fanout_handler')],
  ['op:fanout_routes', regionOp('fanout_routes')],
  ['op:deliver_request', regionOp('deliver_request')],
];

async function scrape(url: string): Promise<Scrape | null> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) });
    return res.ok ? parseProm(await res.text()) : null;
  } catch {
    return null;
  }
}

const log = (msg: string, extra: Record<string, unknown> = {}) => process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), msg, ...extra }) + '\n');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Arrivals of one phase: key → recipient index → arrival count, and latency samples. */
class Tally {
  due = new Map<string, number>();
  seen = new Map<string, Set<number>>();
  latencies: number[] = [];
  duplicates = 0;
  lastRecv = 0;
  record(key: string, who: number, at: number): void {
    const due = this.due.get(key);
    if (due === undefined) return;
    let s = this.seen.get(key);
    if (!s) this.seen.set(key, (s = new Set()));
    if (s.has(who)) return void this.duplicates++;
    s.add(who);
    this.latencies.push(at - due);
    this.lastRecv = Math.max(this.lastRecv, at);
  }
  delivered(): number {
    let n = 0;
    for (const s of this.seen.values()) n += s.size;
    return n;
  }
}

async function runPhase(rate: number, recipients: number, send: (key: string) => void, tally: () => Tally, reset: () => void): Promise<Phase> {
  reset();
  const t = tally();
  const total = Math.max(1, Math.round(rate * SECONDS));
  const start = performance.now() + 50;
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const key = `${rate}-${i}-${crypto.randomBytes(3).toString('hex')}`;
    t.due.set(key, due);
    send(key);
  }
  const expected = total * recipients;
  const deadline = performance.now() + 20_000;
  while (t.delivered() < expected && performance.now() < deadline) await sleep(50);
  await sleep(300);
  const delivered = t.delivered();
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    rate,
    seconds: SECONDS,
    messages: total,
    recipients,
    expected,
    delivered,
    duplicates: t.duplicates,
    lost: expected - delivered,
    deliveriesPerSec: r1(delivered > 0 ? (delivered * 1000) / (t.lastRecv - start) : 0),
    e2e: dist(t.latencies),
  };
}

async function openMany<T>(n: number, batch: number, open: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i += batch) out.push(...(await Promise.all(Array.from({ length: Math.min(batch, n - i) }, (_, j) => open(i + j)))));
  return out;
}

function wsOpen(url: string, onText: (text: string, ws: WebSocket) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('error', reject);
    ws.on('message', (data) => onText(String(data), ws));
    ws.once('open', () => resolve(ws));
  });
}

async function switchboard(): Promise<Phase[]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-fanout-'));
  const edgeDir = edgeStateDir(EDGE_STATE);
  const internalSecret = crypto.randomBytes(24).toString('base64url');
  const authSecret = crypto.randomBytes(24).toString('base64url');
  const [regionPort, edgePort] = [await freePort(), await freePort()];
  const env: Record<string, string> = { NAMESPACE: `bf_${crypto.randomBytes(3).toString('hex')}`, LOG_LEVEL: 'warn' };
  if (REAL) Object.assign(env, { CASSANDRA_CONTACT_POINTS: '127.0.0.1:9042', KAFKA_BROKERS: '127.0.0.1:9092', REDIS_URL: 'redis://127.0.0.1:6379', CASSANDRA_CONSISTENCY: 'LOCAL_ONE' });
  const services: Service[] = [];
  const sockets: WebSocket[] = [];
  try {
    const region = await startRegion({ port: regionPort, dataDir: path.join(dir, 'region'), internalSecret, env, sink: () => {} });
    services.push(region);
    const edge = await startEdge({ port: edgePort, regionUrl: region.url, persistDir: edgeDir, authSecret, internalSecret, devAuth: true, vars: BENCH_EDGE_VARS, sink: () => {} });
    services.push(edge);
    const token = async (user: string, device: string) => {
      const res = await fetch(`${edge.url}/v1/dev/token`, { method: 'POST', body: JSON.stringify({ user, device }) });
      return ((await res.json()) as { token: string }).token;
    };
    const users = Array.from({ length: MEMBERS }, (_, i) => `fan${String(i).padStart(5, '0')}`);
    const res = await fetch(`${edge.url}/v1/conversations`, { method: 'POST', headers: { authorization: `Bearer ${await token(users[0]!, 'setup')}` }, body: JSON.stringify({ members: users.slice(1), title: 'bench' }) });
    const conv = ((await res.json()) as { id: string }).id;
    let tally = new Tally();
    const wsUrl = (tok: string) => `${edge.url.replace(/^http/, 'ws')}/v1/connect?token=${encodeURIComponent(tok)}`;
    log('connecting members', { members: MEMBERS });
    const t0 = performance.now();
    const recipients = await openMany(MEMBERS, 20, async (i) => {
      let acked = 0;
      let top = 0;
      let timer: NodeJS.Timeout | null = null;
      const ws = await wsOpen(wsUrl(await token(users[i]!, 'd1')), (text, sock) => {
        const at = performance.now();
        const f = JSON.parse(text) as { t: string; conv?: string; seq?: number; body?: string };
        if (f.t !== 'msg' || f.conv !== conv) return;
        tally.record(f.body!, i, at);
        top = Math.max(top, f.seq!);
        timer ??= setTimeout(() => {
          timer = null;
          if (top > acked && sock.readyState === sock.OPEN) sock.send(JSON.stringify({ t: 'ack', conv, seq: (acked = top) }));
        }, ACK_MS);
      });
      sockets.push(ws);
      return ws;
    });
    log('members connected', { sockets: recipients.length, ms: Math.round(performance.now() - t0) });
    const sender = await wsOpen(wsUrl(await token(users[0]!, 'bench-sender')), () => {});
    sockets.push(sender);
    await sleep(2000);
    if (WARMUP > 0) {
      tally = new Tally();
      const w = tally;
      const start = performance.now();
      for (let i = 0; i < WARMUP; i++) {
        const key = `warm-${i}`;
        w.due.set(key, performance.now());
        sender.send(JSON.stringify({ t: 'send', conv, cmid: key, body: key }));
        await sleep(200);
      }
      const deadline = performance.now() + 60_000;
      while (w.delivered() < WARMUP * MEMBERS && performance.now() < deadline) await sleep(50);
      log('warm-up (not scored)', { messages: WARMUP, delivered: w.delivered(), expected: WARMUP * MEMBERS, ms: Math.round(performance.now() - start), e2e: dist(w.latencies) });
      await sleep(1000);
    }
    const cpuTargets = new Map<string, Target>([
      ['bench client', { self: true }],
      ['region', { pgrp: region.child.pid! }],
      ['edge workerd', { pgrp: edge.child.pid!, comm: 'workerd' }],
      ['redis', { comm: 'redis-server' }],
    ]);
    const phases: Phase[] = [];
    for (const rate of RATES) {
      const [before, cpu0] = [await scrape(region.url), cpuSnapshot(cpuTargets)];
      const p = await runPhase(rate, MEMBERS, (key) => sender.send(JSON.stringify({ t: 'send', conv, cmid: key, body: key })), () => tally, () => (tally = new Tally()));
      const [after, cpu1] = [await scrape(region.url), cpuSnapshot(cpuTargets)];
      p.cpuPercent = cpuPercent(cpu0, cpu1);
      if (before && after) {
        const d = diffScrape(before, after);
        p.hops = Object.fromEntries(HOPS.map(([name, key]) => [name, summarizeHist(inMs(d.hists.get(key)))]));
        p.counters = Object.fromEntries([...d.counters].flatMap(([k, v]) => {
          const short = regionCounterName(k);
          return short && /fanout|deliver/.test(short) ? [[short, v]] : [];
        }));
      }
      log('switchboard phase', p as unknown as Record<string, unknown>);
      phases.push(p);
      await sleep(2000);
    }
    return phases;
  } finally {
    for (const ws of sockets) ws.terminate();
    for (const s of services.reverse()) await s.stop().catch(() => {});
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(edgeDir, { recursive: true, force: true });
  }
}

async function baseline(): Promise<Phase[]> {
  const child: ChildProcess = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), [path.join(ROOT, 'scripts/bench/broadcast-server.ts')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const sockets: WebSocket[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout!.once('data', (d) => resolve((JSON.parse(String(d)) as { port: number }).port));
      child.once('exit', () => reject(new Error('broadcast server exited')));
    });
    let tally = new Tally();
    await openMany(MEMBERS, 50, async (i) => {
      const ws = await wsOpen(`ws://127.0.0.1:${port}`, (text) => tally.record(text, i, performance.now()));
      sockets.push(ws);
    });
    const sender = await wsOpen(`ws://127.0.0.1:${port}`, () => {});
    sockets.push(sender);
    const phases: Phase[] = [];
    for (const rate of RATES) {
      const p = await runPhase(rate, MEMBERS, (key) => sender.send(key), () => tally, () => (tally = new Tally()));
      log('baseline phase', p as unknown as Record<string, unknown>);
      phases.push(p);
    }
    return phases;
  } finally {
    for (const ws of sockets) ws.terminate();
    child.kill('SIGTERM');
  }
}

function table(name: string, phases: Phase[]): string {
  const rows = phases.map((p) =>
    [name, p.rate, p.messages, p.delivered + '/' + p.expected, p.duplicates, p.deliveriesPerSec, p.e2e?.p50Ms ?? '-', p.e2e?.p99Ms ?? '-', p.e2e?.maxMs ?? '-'].join('\t'),
  );
  return rows.join('\n');
}

async function main(): Promise<void> {
  log('bench:fanout', { members: MEMBERS, rates: RATES, seconds: SECONDS, engines: REAL ? 'real' : 'embedded', edgeState: EDGE_STATE, cpus: os.cpus().length });
  const base = await baseline();
  const sb = await switchboard();
  const result = { when: new Date().toISOString(), members: MEMBERS, rates: RATES, seconds: SECONDS, ackMs: ACK_MS, engines: REAL ? 'real' : 'embedded', edgeState: EDGE_STATE, cpus: os.cpus().length, switchboard: sb, baseline: base };
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(result, null, 2) + '\n');
  process.stdout.write(['system\trate\tmsgs\tdelivered\tdup\tdeliv/s\tp50ms\tp99ms\tmaxms', table('switchboard', sb), table('baseline', base)].join('\n') + `\nwrote ${path.relative(ROOT, OUT)}\n`);
  for (const p of sb) {
    const lines = [`where the time goes at ${p.rate} msg/s (ms; p50 p99; ages count from sequencing):`];
    for (const [k, h] of Object.entries(p.hops ?? {})) lines.push(`  ${k.padEnd(28)}${String(h?.p50Ms ?? '-').padStart(10)}${String(h?.p99Ms ?? '-').padStart(10)}${h ? `   n=${h.count}` : ''}`);
    if (p.counters) lines.push(`  counters: ${JSON.stringify(p.counters)}`);
    if (p.cpuPercent) lines.push(`  CPU % of one core: ${Object.entries(p.cpuPercent).map(([k, v]) => `${k} ${v ?? '-'}`).join(', ')}`);
    process.stdout.write(lines.join('\n') + '\n');
  }
  // The targets (issue #17), with 1,000 members all connected.
  const at = (rate: number) => sb.find((p) => p.rate === rate);
  const at10 = at(10);
  if (at10?.e2e) process.stdout.write(`target p99 < 200 ms at 10 msg/s: ${at10.e2e.p99Ms} ms (${at10.e2e.p99Ms < 200 ? 'met' : 'NOT met'}; edge state on ${EDGE_STATE})\n`);
  const at30 = at(30);
  if (at30?.e2e) {
    const met = at30.deliveriesPerSec >= 27_000 && at30.e2e.p99Ms < 500;
    process.stdout.write(`target ≥ 27,000 deliveries/s with p99 < 500 ms at 30 msg/s: ${at30.deliveriesPerSec}/s, p99 ${at30.e2e.p99Ms} ms (${met ? 'met' : 'NOT met'}; edge state on ${EDGE_STATE})\n`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    log('bench failed', { err: String(err?.stack ?? err) });
    process.exit(1);
  },
);
