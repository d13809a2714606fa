/**
 * `npm run bench:latency`: end-to-end send → receive latency of 1:1 conversations on the real
 * stack, at fixed sustained rates, against a raw WebSocket echo baseline measured in the same run.
 *
 * It brings up the real engines (ensureStack), starts a region on them (unique NAMESPACE) and the
 * edge in workerd (fresh state dir), places them on the cores (BENCH_CPU_LAYOUT), creates
 * BENCH_PAIRS direct conversations, connects a sender and a recipient device for each, warms up,
 * then for each rate:
 *   1. echo: the same client machinery against a `ws` echo server in its own Node process;
 *   2. switchboard: messages spread round-robin over the conversations on an open-loop
 *      wall-clock schedule, measuring due → `sent` (the edge's sequencing ack) and due → `msg` at
 *      the recipient (end to end), plus the region's per-stage timing from its GET /metrics.
 * Prints a table per rate and where the time goes, writes .bench/latency.json, stops everything
 * (also on Ctrl-C; a second Ctrl-C kills at once) and removes its keyspace, topics and keys.
 *
 * | variable | default | |
 * |---|---|---|
 * | BENCH_RATES | 200,500,1000 | msg/s, one phase each |
 * | BENCH_SECONDS | 15 | seconds per rate (echo and switchboard each) |
 * | BENCH_PAIRS | 50 | 1:1 conversations (2 devices each) |
 * | BENCH_WARMUP_SECONDS, BENCH_WARMUP_RATE | 5, 100 | unmeasured warm-up |
 * | BENCH_BODY_BYTES | 200 | message body size |
 * | BENCH_DRAIN_SECONDS | 10 | after the last send, how long to wait for stragglers (then: lost) |
 * | BENCH_LATE_MS | 1000 | received later than this after its due time counts as late |
 * | BENCH_ACK | 1 | the recipient acks (cumulatively, as the SDK does; 0: never) |
 * | BENCH_ACK_MS | ACK_COALESCE_MS (250) | acks gathered per conversation, as the SDK's ackDelayMs (0: every message) |
 * | BENCH_ECHO | 1 | 0 skips the echo baseline |
 * | BENCH_KEEP | 0 | 1 keeps the keyspace, topics and Redis keys |
 * | BENCH_VERBOSE | 0 | 1 streams the region's and the edge's logs to stderr |
 * | BENCH_EDGE_STATE | tmpfs | where workerd keeps the Durable Objects' SQLite: `tmpfs` or `disk` (edge-state.ts) |
 * | BENCH_CPU_LAYOUT | split | `split`: the edge side (with the bench client) and the region side each on its own half of the cores; `split-client-region`: the bench client on the region's half, at nice -10; `shared`: anywhere (cpu-layout.ts) |
 * | BENCH_OUT | .bench/latency.json | |
 * | BENCH_EDGE_VARS | (none) | edge settings for this run, `KEY:VALUE,…` (e.g. DRAIN_COALESCE_MS:250) |
 * | BENCH_TRACE | (none) | a directory: each rate's messages as CSV (`trace-<phase>-<rate>.csv`, phases counted from 0: lane, due, send, sequenced, sent, msg; ms from the phase's start) |
 */
import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import WebSocket from 'ws';
import { ACK_COALESCE_MS, AckCoalescer } from '@switchboard/protocol';
import { freePort } from '../lib/ports.ts';
import { ROOT, startEdge, startRegion, type Service } from '../lib/processes.ts';
// Benches measure capacity, not the rate limits (edge/src/limits/limits.ts): raised for them.
import { BENCH_EDGE_VARS } from './edge-vars.ts';
import { cpuPercent, cpuSnapshot, pidsOf, type Target } from './cpu.ts';
import { cpuLayout, Pinning } from './cpu-layout.ts';
import { Run, dist, drain, openLoop, phaseResult, type Dist, type PhaseResult } from './load.ts';
import { removeNamespace } from './cleanup.ts';
import { edgeState, edgeStateDir } from './edge-state.ts';
import { num } from './env-number.ts';
import { diffScrape, inMs, parseProm, regionAge, regionCounterName, regionOp, summarizeHist, type HistSummary, type Scrape } from './prom.ts';

// ---- configuration ----------------------------------------------------------------------------

function rates(): number[] {
  const v = process.env.BENCH_RATES?.trim() || '200,500,1000';
  const list = v.split(',').map((s) => Number(s.trim()));
  if (list.some((n) => !Number.isFinite(n) || n <= 0 || n > 100_000)) {
    console.error(`BENCH_RATES: expected comma-separated msg/s, e.g. 200,500,1000, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return list;
}

function edgeVars(): Record<string, string> {
  const v = process.env.BENCH_EDGE_VARS?.trim() || '';
  const out: Record<string, string> = {};
  for (const item of v ? v.split(',') : []) {
    const m = /^([A-Z][A-Z0-9_]*):(.*)$/.exec(item.trim());
    if (!m) {
      console.error(`BENCH_EDGE_VARS: expected KEY:VALUE,… (e.g. DRAIN_COALESCE_MS:250), got ${JSON.stringify(item)}`);
      process.exit(2);
    }
    out[m[1]!] = m[2]!;
  }
  return out;
}

const flag = (name: string, dflt: boolean) => (process.env[name] === undefined || process.env[name] === '' ? dflt : !['0', 'false', 'no'].includes(process.env[name]!.toLowerCase()));

const CFG = {
  rates: rates(),
  seconds: num('BENCH_SECONDS', 15, 1, 3600),
  pairs: Math.round(num('BENCH_PAIRS', 50, 1, 5000)),
  warmupSeconds: num('BENCH_WARMUP_SECONDS', 5, 0, 600),
  warmupRate: num('BENCH_WARMUP_RATE', 100, 1, 100_000),
  bodyBytes: Math.round(num('BENCH_BODY_BYTES', 200, 1, 65_536)),
  drainSeconds: num('BENCH_DRAIN_SECONDS', 10, 1, 600),
  lateMs: num('BENCH_LATE_MS', 1000, 1, 600_000),
  ack: flag('BENCH_ACK', true),
  ackMs: num('BENCH_ACK_MS', ACK_COALESCE_MS, 0, 60_000),
  echo: flag('BENCH_ECHO', true),
  keep: flag('BENCH_KEEP', false),
  verbose: flag('BENCH_VERBOSE', false),
  // On disk, workerd waits for a disk sync on its only thread at every commit (some runs at 500
  // msg/s received only 404–461 msg/s), a limit of the local runtime that Cloudflare's
  // replicated storage does not share.
  edgeState: edgeState('tmpfs'),
  cpuLayout: cpuLayout(),
  out: path.resolve(ROOT, process.env.BENCH_OUT || '.bench/latency.json'),
  edgeVars: edgeVars(),
  trace: process.env.BENCH_TRACE ? path.resolve(process.env.BENCH_TRACE) : null,
};

/** The issue's target: p99 end to end under 50 ms at 500 msg/s. */
const TARGET = { rate: 500, p99Ms: 50 };

const progress = (msg: string) => process.stderr.write(`bench: ${msg}\n`);
const load = () => os.loadavg().map((x) => Math.round(x * 100) / 100);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---- lifecycle: everything started is stopped, also on Ctrl-C -------------------------------

class Aborted extends Error {
  constructor() {
    super('interrupted');
  }
}
const abort = new AbortController();
const check = () => {
  if (abort.signal.aborted) throw new Aborted();
};
const services: Service[] = [];
let stopping = false;
const children: ChildProcess[] = [];
let firstSignalAt = 0;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (firstSignalAt === 0) {
      firstSignalAt = Date.now();
      progress(`${sig}: stopping (again to kill at once)`);
      abort.abort();
    } else if (Date.now() - firstSignalAt > 1000) process.exit(130);
    // else: the same Ctrl-C arriving twice (the terminal's process group, and tsx relaying it)
  });
}
const pinning = new Pinning(CFG.cpuLayout);
process.on('exit', () => {
  pinning.restore();
  for (const s of services) s.kill();
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

// ---- the Switchboard client: raw protocol over `ws` ---------------------------------------------

type Frame = Record<string, any> & { t: string };

/** Server-side closes of our sockets after their hello, by close code (the phase's messages on them are then lost). */
const closes: Record<string, number> = {};

function connect(url: string, onFrame: (f: Frame, at: number, ws: WebSocket) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => (ws.terminate(), reject(new Error(`${url}: no hello within 20 s`))), 20_000);
    let hello = false;
    ws.on('message', (data) => {
      const at = performance.now();
      const f = JSON.parse(String(data)) as Frame;
      if (!hello && f.t === 'hello') {
        hello = true;
        clearTimeout(timer);
        return resolve(ws);
      }
      onFrame(f, at, ws);
    });
    ws.once('unexpected-response', (_req, res) => (clearTimeout(timer), reject(new Error(`connect: HTTP ${res.statusCode}`))));
    ws.once('close', (code) => {
      if (hello && !stopping) closes[code] = (closes[code] ?? 0) + 1;
    });
    // After the hello an error only ends this socket; its messages then count as lost.
    ws.on('error', (err) => (clearTimeout(timer), reject(err)));
  });
}

async function postJson(url: string, body: unknown, token?: string): Promise<any> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  if (!res.ok) throw new Error(`POST ${url}: HTTP ${res.status} ${(await res.text()).slice(0, 200)}`);
  return res.json();
}

/** Runs `fn` over `items` with at most `n` in flight. */
async function pool<T, R>(items: T[], n: number, fn: (t: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        check();
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

interface Pair {
  conv: string;
  sender: WebSocket;
  recipient: WebSocket;
  /** Opens a replacement socket (the edge dropped it, e.g. workerd reloaded). */
  reconnect(): Promise<void>;
}

// ---- per-hop figures ----------------------------------------------------------------------------

interface SwitchboardHops {
  /** Client-side, ms from the due time: the send leaving, sequencing (msg.ts), `sent`, `msg`. */
  fromDue: { onWire: Dist | null; sequenced: Dist | null; sentAtSender: Dist | null; msgAtRecipient: Dist | null };
  /** Ms since sequencing (msg.ts): region points from /metrics, then the recipient (client). */
  sinceSequenced: Record<string, HistSummary | Dist | null>;
  /** Region operation durations from /metrics. */
  ops: Record<string, HistSummary | null>;
  counters: Record<string, number>;
  /** Region messages per /internal/events request: >1 means the edge batched its outbox drain. */
  messagesPerEventsRequest: number | null;
  /** Records' deliver calls per HTTP request to the edge: >1 means the region coalesced them. */
  deliverCallsPerRequest: number | null;
}

const AGE_POINTS = ['region_received', 'stored', 'published', 'fanout_consumed', 'fanout_resolved', 'delivered'];
const OPS = ['events_request', 'store', 'publish', 'fanout_handler', 'fanout_conversation', 'fanout_routes', 'deliver', 'deliver_request'];

function hops(run: Run, region: Scrape | null): SwitchboardHops {
  const all = [...run.samples.values()];
  const seq = all.filter((s) => s.seqTs !== undefined);
  const sinceSequenced: SwitchboardHops['sinceSequenced'] = {};
  const ops: SwitchboardHops['ops'] = {};
  const counters: Record<string, number> = {};
  if (region) {
    for (const p of AGE_POINTS) sinceSequenced[p] = summarizeHist(inMs(region.hists.get(regionAge(p))));
    for (const o of OPS) ops[o] = summarizeHist(inMs(region.hists.get(regionOp(o))));
    for (const [k, v] of region.counters) {
      const short = regionCounterName(k);
      if (short) counters[short] = v;
    }
  }
  sinceSequenced.recipient = dist(seq.filter((s) => s.recvAt !== undefined).map((s) => run.toEpoch(s.recvAt!) - s.seqTs!));
  const reqs = counters.events_requests;
  return {
    fromDue: {
      onWire: dist(all.map((s) => s.sentAt - s.due)),
      sequenced: dist(seq.map((s) => s.seqTs! - run.toEpoch(s.due))),
      sentAtSender: dist(all.filter((s) => s.ackAt !== undefined).map((s) => s.ackAt! - s.due)),
      msgAtRecipient: dist(all.filter((s) => s.recvAt !== undefined).map((s) => s.recvAt! - s.due)),
    },
    sinceSequenced,
    ops,
    counters,
    messagesPerEventsRequest: reqs ? Math.round(((counters.events_messages ?? 0) / reqs) * 100) / 100 : null,
    deliverCallsPerRequest: counters.deliver_requests ? Math.round(((counters.deliver_calls ?? 0) / counters.deliver_requests) * 100) / 100 : null,
  };
}

/** One line per message, ms from the phase's first due time (empty: never happened). */
function writeTrace(file: string, run: Run): void {
  const all = [...run.samples.values()];
  const t0 = Math.min(...all.map((s) => s.due));
  const ms = (x: number | undefined) => (x === undefined ? '' : (x - t0).toFixed(2));
  const lines = ['lane,due,send,sequenced,sent,msg', ...all.map((s) => [s.lane, ms(s.due), ms(s.sentAt), ms(s.seqTs === undefined ? undefined : s.seqTs - run.epochOffset), ms(s.ackAt), ms(s.recvAt)].join(','))];
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, lines.join('\n') + '\n');
  progress(`trace: ${path.relative(process.cwd(), file)} (0 = ${new Date(run.toEpoch(t0)).toISOString()}, epoch ms ${run.toEpoch(t0).toFixed(1)})`);
}

// ---- printing -----------------------------------------------------------------------------------

const f1 = (x: number | undefined | null) => (x === undefined || x === null || Number.isNaN(x) ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const pad = (s: string, n: number) => s.padStart(n);

function row(label: string, r: PhaseResult, d: Dist | null, lost: number, late: number | string): string {
  return `${label.padEnd(24)}${pad(String(r.rate), 6)}${pad(f1(r.achievedSendRate), 8)}${pad(f1(r.achievedRecvRate), 8)}${pad(String(r.messages), 7)}${pad(String(lost), 6)}${pad(String(late), 6)}${pad(f1(d?.p50Ms), 8)}${pad(f1(d?.p95Ms), 8)}${pad(f1(d?.p99Ms), 8)}${pad(f1(d?.maxMs), 8)}`;
}
const HEADER = `${'ms from due time'.padEnd(24)}${pad('rate', 6)}${pad('sent/s', 8)}${pad('recv/s', 8)}${pad('n', 7)}${pad('lost', 6)}${pad('late', 6)}${pad('p50', 8)}${pad('p95', 8)}${pad('p99', 8)}${pad('max', 8)}`;

interface RateResult {
  rate: number;
  loadAvgAtStart: number[];
  echo: PhaseResult | null;
  switchboard: PhaseResult;
  /** switchboard / echo, at p50 and p99. */
  vsEcho: { e2eP50: number | null; e2eP99: number | null; sentP50: number | null; sentP99: number | null } | null;
  errors: Record<string, number>;
  /** Engines whose process changed during the phase: its figures are not a steady-state measurement. */
  enginesRestarted: string[];
  /** Our sockets the server closed during the phase, by close code. */
  socketCloses: Record<string, number>;
  /** Warn/error lines the region and the edge logged during the phase (a restart or a failed deliver shows here). */
  serviceLogLines: Record<string, number>;
  hops: SwitchboardHops;
  cpuPercent: Record<string, number | null>;
  /** CPU ms per message beyond the idle baseline, per process, over the phase (sending and draining). */
  cpuMsPerMessage: Record<string, number | null>;
}

function printRate(r: RateResult): void {
  const out: string[] = [];
  const sw = r.switchboard;
  out.push('', `== ${r.rate} msg/s for ${sw.seconds} s  (load average at start ${r.loadAvgAtStart.join(' ')})`, HEADER);
  if (r.echo) out.push(row('echo (ws, loopback)', r.echo, r.echo.e2e, r.echo.lost, r.echo.late));
  out.push(row('switchboard send→sent', sw, sw.ack, sw.unacked, '-'));
  out.push(row('switchboard send→msg', sw, sw.e2e, sw.lost, sw.late));
  if (r.vsEcho) {
    const x = (v: number | null) => (v === null ? '-' : `${v.toFixed(1)}×`);
    out.push(`vs echo: end to end p50 ${x(r.vsEcho.e2eP50)} p99 ${x(r.vsEcho.e2eP99)};  send→sent p50 ${x(r.vsEcho.sentP50)} p99 ${x(r.vsEcho.sentP99)}`);
  }
  if (sw.duplicates > 0) out.push(`duplicate arrivals (retransmits): ${sw.duplicates}`);
  if (Object.keys(r.errors).length) out.push(`error frames: ${JSON.stringify(r.errors)}`);
  if (r.enginesRestarted.length) out.push(`NOT STEADY: ${r.enginesRestarted.join(', ')} restarted during the phase (another test?); rerun for figures`);
  if (Object.keys(r.socketCloses).length) out.push(`sockets closed by the server (by code): ${JSON.stringify(r.socketCloses)}`);
  if (Object.keys(r.serviceLogLines).length) out.push(`service log lines at warn/error during the phase: ${JSON.stringify(r.serviceLogLines)}`);
  const h = r.hops;
  const line = (label: string, d: { p50Ms: number; p95Ms: number; p99Ms: number } | null | undefined, note = '') =>
    `  ${label.padEnd(44)}${pad(f1(d?.p50Ms), 8)}${pad(f1(d?.p95Ms), 8)}${pad(f1(d?.p99Ms), 8)}   ${note}`;
  out.push(`where the time goes (ms; p50 p95 p99)`);
  out.push(`  client view, from the due time:`);
  out.push(line('send on the wire (client scheduling)', h.fromDue.onWire));
  out.push(line('sequenced at the ConversationDO (msg.ts)', h.fromDue.sequenced, 'ms clock'));
  out.push(line('`sent` back at the sender', h.fromDue.sentAtSender));
  out.push(line('`msg` at the recipient', h.fromDue.msgAtRecipient));
  out.push(`  message age since sequencing (msg.ts), along the path:`);
  const labels: Record<string, string> = {
    region_received: 'region /internal/events received',
    stored: 'stored (Cassandra)',
    published: 'published (Kafka) = region answers edge',
    fanout_consumed: 'fan-out handler picked it up',
    fanout_resolved: 'members + routes resolved',
    delivered: 'edge deliver call answered',
    recipient: '`msg` at the recipient (client)',
  };
  for (const [k, label] of Object.entries(labels)) out.push(line(label, h.sinceSequenced[k] as any));
  out.push(`  region operations (duration of each call):`);
  for (const o of OPS) {
    const s = h.ops[o];
    out.push(line(o, s, s ? `n=${s.count}` : ''));
  }
  if (h.messagesPerEventsRequest !== null) out.push(`  messages per /internal/events request (edge → region): ${h.messagesPerEventsRequest}`);
  if (h.deliverCallsPerRequest !== null) out.push(`  records per /internal/deliver request (region → edge): ${h.deliverCallsPerRequest}`);
  const cpu = r.cpuPercent;
  out.push(`  CPU % of one core: ${Object.entries(cpu).map(([k, v]) => `${k} ${v === null ? '-' : v}`).join(', ')}`);
  out.push(`  CPU ms per message above idle: ${Object.entries(r.cpuMsPerMessage).map(([k, v]) => `${k} ${v === null ? '-' : v}`).join(', ')}`);
  process.stdout.write(out.join('\n') + '\n');
}

// ---- the run ------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const loadAtStart = load();
  const startedAt = new Date();
  progress(`load average ${loadAtStart.join(' ')} on ${os.cpus().length} CPUs; rates ${CFG.rates.join(', ')} msg/s × ${CFG.seconds} s, ${CFG.pairs} conversations; edge state on ${CFG.edgeState}; CPU layout ${pinning.describe()}`);

  progress('real engines: ensureStack …');
  const { ensureStack, stackStatus } = await import('../stack/index.ts');
  const stack = await ensureStack({
    signal: abort.signal,
    log: (l) => {
      try {
        const j = JSON.parse(l) as { msg?: string; level?: string };
        if (CFG.verbose || j.level === 'error' || j.level === 'warn') progress(`stack: ${j.msg ?? l}`);
      } catch {
        if (CFG.verbose) progress(`stack: ${l}`);
      }
    },
  });
  check();
  const engines = (await stackStatus()).engines;
  progress(`engines ready: ${engines.map((e) => `${e.engine} ${e.address}`).join(', ')}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-'));
  const edgeDir = edgeStateDir(CFG.edgeState);
  const namespace = `bench_${crypto.randomBytes(4).toString('hex')}`;
  const regionEnv = {
    CASSANDRA_CONTACT_POINTS: stack.cassandra.contactPoints.join(','),
    CASSANDRA_LOCAL_DC: stack.cassandra.localDataCenter,
    KAFKA_BROKERS: stack.kafka.brokers.join(','),
    REDIS_URL: stack.redis.url,
    NAMESPACE: namespace,
    LOG_LEVEL: CFG.verbose ? 'info' : 'warn',
  };
  /** Warn/error lines of the region and the edge: over the whole run, and in the current phase. */
  const logTotals: Record<string, number> = {};
  const logCounts: Record<string, number> = {};
  const sink = (svc: string, line: string) => {
    if (CFG.verbose) process.stderr.write(`[${svc}] ${line}\n`);
    const level = /"level":"(warn|error)"/.exec(line)?.[1] ?? (/\b(error|warn)/i.exec(line)?.[1]?.toLowerCase() ?? null);
    if (!level) return;
    const key = `${svc} ${level}`;
    logCounts[key] = (logCounts[key] ?? 0) + 1;
    logTotals[key] = (logTotals[key] ?? 0) + 1;
  };
  const sockets: WebSocket[] = [];
  let echoProc: ChildProcess | null = null;
  try {
    const [regionPort, edgePort] = [await freePort(), await freePort()];
    const authSecret = crypto.randomBytes(24).toString('base64url');
    const internalSecret = crypto.randomBytes(24).toString('base64url');
    progress(`region on the real engines (NAMESPACE=${namespace}) …`);
    const region = await startRegion({ port: regionPort, dataDir: path.join(dir, 'region'), internalSecret, env: regionEnv, sink });
    services.push(region);
    check();
    progress('edge in workerd …');
    const edge = await startEdge({ port: edgePort, regionUrl: region.url, persistDir: edgeDir, authSecret, internalSecret, devAuth: true, vars: { ...BENCH_EDGE_VARS, ...CFG.edgeVars }, sink });
    services.push(edge);
    check();

    let echoUrl: string | null = null;
    if (CFG.echo) {
      progress('echo server …');
      echoProc = spawn(path.join(ROOT, 'node_modules', '.bin', 'tsx'), [path.join(ROOT, 'scripts/bench/echo-server.ts')], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      children.push(echoProc);
      const port = await new Promise<number>((resolve, reject) => {
        const rl = readline.createInterface({ input: echoProc!.stdout! });
        rl.once('line', (l) => resolve((JSON.parse(l) as { port: number }).port));
        echoProc!.once('exit', (code) => reject(new Error(`echo server exited (${code})`)));
      });
      echoUrl = `ws://127.0.0.1:${port}`;
    }

    // -- conversations and devices --
    progress(`${CFG.pairs} 1:1 conversations, ${CFG.pairs * 2} devices …`);
    let current: Run | null = null;
    const errors: Record<string, number> = {};
    const ids = Array.from({ length: CFG.pairs }, (_, i) => i);
    const pairs = await pool(ids, 8, async (i): Promise<Pair> => {
      const [st, rt] = await Promise.all([
        postJson(`${edge.url}/v1/dev/token`, { user: `s${i}`, device: 'd1' }),
        postJson(`${edge.url}/v1/dev/token`, { user: `r${i}`, device: 'd1' }),
      ]);
      const conv = (await postJson(`${edge.url}/v1/conversations`, { members: [`r${i}`], direct: true }, st.token)).id as string;
      const wsBase = edge.url.replace(/^http/, 'ws') + '/v1/connect?token=';
      const openSender = () =>
        connect(wsBase + encodeURIComponent(st.token), (f, at) => {
          if (f.t === 'sent') current?.ack(f.cmid, at, f.ts);
          else if (f.t === 'error') errors[f.code] = (errors[f.code] ?? 0) + 1;
        });
      const openRecipient = () => {
        let socket: WebSocket | null = null;
        const acks = new AckCoalescer((conv, seq) => socket?.readyState === WebSocket.OPEN && socket.send(JSON.stringify({ t: 'ack', conv, seq })), CFG.ackMs);
        return connect(wsBase + encodeURIComponent(rt.token), (f, at, ws) => {
          if (f.t !== 'msg') return;
          current?.recv(f.cmid, at);
          socket = ws;
          if (CFG.ack) acks.ack(f.conv, f.seq);
        });
      };
      const pair: Pair = {
        conv,
        sender: await openSender(),
        recipient: await openRecipient(),
        async reconnect() {
          if (pair.sender.readyState !== WebSocket.OPEN) sockets.push((pair.sender = await openSender()));
          if (pair.recipient.readyState !== WebSocket.OPEN) sockets.push((pair.recipient = await openRecipient()));
        },
      };
      sockets.push(pair.sender, pair.recipient);
      return pair;
    });
    /** Before each phase: replaces sockets the edge dropped, so one reload spoils one phase only. */
    const reconnectAll = async () => {
      const broken = pairs.filter((p) => p.sender.readyState !== WebSocket.OPEN || p.recipient.readyState !== WebSocket.OPEN);
      if (broken.length === 0) return;
      progress(`reconnecting ${broken.length} conversations' devices the edge dropped …`);
      await pool(broken, 8, (p) => p.reconnect());
    };
    const echoSockets = echoUrl
      ? await pool(ids, 16, async () => {
          const ws = new WebSocket(echoUrl!, { perMessageDeflate: false });
          await new Promise<void>((resolve, reject) => (ws.once('open', () => resolve()), ws.on('error', reject)));
          ws.on('message', (data) => {
            const at = performance.now();
            const f = JSON.parse(String(data)) as Frame;
            current?.ack(f.cmid, at);
            current?.recv(f.cmid, at);
          });
          sockets.push(ws);
          return ws;
        })
      : [];
    check();

    const body = 'x'.repeat(CFG.bodyBytes);
    const frame = (conv: string, key: string) => `{"t":"send","rid":"${key}","conv":"${conv}","cmid":"${key}","body":"${body}"}`;
    const switchboardPhase = async (name: string, rate: number, seconds: number): Promise<Run> => {
      const run = (current = new Run());
      await openLoop(run, rate, seconds, pairs.length, (i) => `${name}-${i}`, (_i, lane, key) => pairs[lane]!.sender.send(frame(pairs[lane]!.conv, key)), abort.signal);
      await drain(run, CFG.drainSeconds * 1000, abort.signal);
      return run;
    };
    const echoPhase = async (name: string, rate: number, seconds: number): Promise<Run> => {
      const run = (current = new Run());
      await openLoop(run, rate, seconds, echoSockets.length, (i) => `${name}-${i}`, (_i, lane, key) => echoSockets[lane]!.send(frame(pairs[lane]!.conv, key)), abort.signal);
      await drain(run, CFG.drainSeconds * 1000, abort.signal);
      return run;
    };
    const scrape = async (): Promise<Scrape | null> => {
      try {
        const res = await fetch(`${region.url}/metrics`, { signal: AbortSignal.timeout(5000) });
        return res.ok ? parseProm(await res.text()) : null;
      } catch {
        return null;
      }
    };

    const cpuTargets = new Map<string, Target>([
      ['bench client', { self: true }],
      ['region', { pgrp: region.child.pid! }],
      // The edge runner: a Node process (Miniflare, idle once started) and workerd running the Worker.
      ['edge workerd', { pgrp: edge.child.pid!, comm: 'workerd' }],
      ['edge runner', { pgrp: edge.child.pid!, comm: 'node' }],
    ]);
    // The tsx wrapper and the Node process it runs the server in.
    if (echoProc) cpuTargets.set('echo server', { tree: echoProc.pid! });
    // Engines may be restarted by others meanwhile: their pids are looked up again per phase.
    const refreshEnginePids = async (): Promise<Map<string, number | undefined>> => {
      const pids = new Map<string, number | undefined>();
      for (const e of (await stackStatus().catch(() => ({ engines }))).engines) {
        pids.set(e.engine, e.pid);
        if (e.engine === 'redis') cpuTargets.set('redis', { comm: 'redis-server' });
        else if (e.pid) cpuTargets.set(e.engine, { pid: e.pid });
      }
      return pids;
    };
    /** Engines whose process changed between two looks (restarted, e.g. by a fault-injection test). */
    const restarted = (a: Map<string, number | undefined>, b: Map<string, number | undefined>) =>
      [...b].filter(([name, pid]) => pid !== undefined && a.get(name) !== undefined && a.get(name) !== pid).map(([name]) => name);
    const enginePids = await refreshEnginePids();
    // Before the warm-up, so that it also warms up in place. Engines outlive the run: put back after.
    pinning.pin('edge', [...pidsOf({ pgrp: edge.child.pid! }), ...(echoProc ? pidsOf({ tree: echoProc.pid! }) : [])]);
    pinning.pinClient([process.pid], progress);
    pinning.pin('region', pidsOf({ pgrp: region.child.pid! }));
    pinning.pin('region', [enginePids.get('cassandra'), enginePids.get('kafka')].filter((p): p is number => p !== undefined), { restore: true });

    // -- warm-up: creates the ConversationDOs, JITs both sides, joins the fan-out consumer --
    if (CFG.warmupSeconds > 0) {
      progress(`warm-up: ${CFG.warmupRate} msg/s for ${CFG.warmupSeconds} s …`);
      const w = await switchboardPhase('warm', CFG.warmupRate, CFG.warmupSeconds);
      const wr = phaseResult(w, CFG.warmupRate, CFG.warmupSeconds, CFG.lateMs);
      progress(`warm-up: ${wr.messages - wr.lost}/${wr.messages} delivered, e2e p50 ${f1(wr.e2e?.p50Ms)} p99 ${f1(wr.e2e?.p99Ms)} ms`);
      if (echoSockets.length) await echoPhase('warmecho', CFG.warmupRate, Math.min(2, CFG.warmupSeconds));
      check();
    }

    // Idle baseline: what the processes burn with no traffic (JVMs, pollers, heartbeats).
    await sleep(2000);
    const idle0 = cpuSnapshot(cpuTargets);
    await sleep(5000);
    const idleCpu = cpuPercent(idle0, cpuSnapshot(cpuTargets));
    progress(`idle CPU % of one core: ${Object.entries(idleCpu).map(([k, v]) => `${k} ${v ?? '-'}`).join(', ')}`);
    check();

    const results: RateResult[] = [];
    for (const [phase, rate] of CFG.rates.entries()) {
      check();
      const loadAvgAtStart = load();
      let echo: PhaseResult | null = null;
      if (echoSockets.length) {
        progress(`${rate} msg/s: echo for ${CFG.seconds} s …`);
        echo = phaseResult(await echoPhase(`e${phase}r${rate}`, rate, CFG.seconds), rate, CFG.seconds, CFG.lateMs);
        check();
        await sleep(500);
      }
      progress(`${rate} msg/s: switchboard for ${CFG.seconds} s …`);
      await reconnectAll();
      for (const m of [errors, closes, logCounts]) for (const k of Object.keys(m)) delete m[k];
      const pidsBefore = await refreshEnginePids();
      const before = await scrape();
      const cpu0 = cpuSnapshot(cpuTargets);
      // Keys (cmids) unique per phase: a rate given twice must not resend the same cmids, which
      // the edge would answer as duplicates without delivering them again.
      const run = await switchboardPhase(`m${phase}r${rate}`, rate, CFG.seconds);
      const cpu1 = cpuSnapshot(cpuTargets);
      check();
      const after = await scrape();
      const enginesRestarted = restarted(pidsBefore, await refreshEnginePids());
      const sw = phaseResult(run, rate, CFG.seconds, CFG.lateMs);
      if (CFG.trace) writeTrace(path.join(CFG.trace, `trace-${phase}-${rate}.csv`), run);
      const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? Math.round((a / b) * 10) / 10 : null);
      const r: RateResult = {
        rate,
        loadAvgAtStart,
        echo,
        switchboard: sw,
        vsEcho: echo
          ? { e2eP50: ratio(sw.e2e?.p50Ms, echo.e2e?.p50Ms), e2eP99: ratio(sw.e2e?.p99Ms, echo.e2e?.p99Ms), sentP50: ratio(sw.ack?.p50Ms, echo.e2e?.p50Ms), sentP99: ratio(sw.ack?.p99Ms, echo.e2e?.p99Ms) }
          : null,
        errors: { ...errors },
        enginesRestarted,
        socketCloses: { ...closes },
        serviceLogLines: { ...logCounts },
        hops: hops(run, before && after ? diffScrape(before, after) : null),
        cpuPercent: cpuPercent(cpu0, cpu1),
        cpuMsPerMessage: {},
      };
      // Over the whole phase (sending and draining): CPU seconds above idle / messages sent.
      const phaseMs = cpu1.at - cpu0.at;
      for (const [k, v] of Object.entries(r.cpuPercent)) {
        const base = idleCpu[k];
        if (k === 'capacity' || k === 'others' || k === 'machine') continue;
        r.cpuMsPerMessage[k] = v === null || base === null || base === undefined ? null : Math.round((((v - base) / 100) * phaseMs * 100) / sw.messages) / 100;
      }
      const ours = Object.values(r.cpuMsPerMessage).filter((v): v is number => v !== null);
      r.cpuMsPerMessage.total = Math.round(ours.reduce((a, b) => a + b, 0) * 100) / 100;
      results.push(r);
      progress(
        `${rate} msg/s: sent ${sw.achievedSendRate}/s, e2e p50 ${f1(sw.e2e?.p50Ms)} p99 ${f1(sw.e2e?.p99Ms)} ms, lost ${sw.lost}, late ${sw.late}` +
          (echo ? `; echo p50 ${f1(echo.e2e?.p50Ms)} p99 ${f1(echo.e2e?.p99Ms)} ms` : ''),
      );
      printRate(r);
      await sleep(1000);
    }

    // -- the record --
    const atTarget = results.find((r) => r.rate === TARGET.rate);
    const target = {
      ...TARGET,
      measuredP99Ms: atTarget?.switchboard.e2e?.p99Ms ?? null,
      met: atTarget ? (atTarget.switchboard.e2e?.p99Ms ?? Infinity) < TARGET.p99Ms && atTarget.switchboard.lost === 0 : null,
    };
    const record = {
      at: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      config: { ...CFG, out: undefined, namespace, cpus: pinning.cpus },
      host: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
      loadAvg: { atStart: loadAtStart, atEnd: load() },
      idleCpuPercent: idleCpu,
      setup: `one machine: bench client (ws), edge in workerd (Miniflare, scripts/edge-runner.ts; Durable Object storage on ${CFG.edgeState}), CPU layout ${pinning.describe()}, region (Node, all roles) on single-node Cassandra (RF 1), Kafka (1 broker, 8 partitions) and Redis; echo = ws echo server in its own Node process`,
      definitions: {
        due: 'each message is due at start + i/rate (open loop); every latency counts from its due time',
        ack: 'due → `sent` at the sender (the edge sequenced and stored it)',
        e2e: 'due → `msg` at the recipient device',
        lost: `no \`msg\` within ${CFG.drainSeconds} s after the last send`,
        late: `arrived more than ${CFG.lateMs} ms after its due time`,
        echoE2e: 'due → the same frame back from the echo server',
        sinceSequenced: 'message age (now − msg.ts) at each region point, from the region /metrics histograms (bucket-interpolated)',
      },
      target,
      results,
      serviceLogLines: logTotals,
    };
    fs.mkdirSync(path.dirname(CFG.out), { recursive: true });
    fs.writeFileSync(CFG.out, JSON.stringify(record, null, 2) + '\n');

    // -- summary table --
    const lines = ['', `== summary  (load average at start ${loadAtStart.join(' ')}, at end ${load().join(' ')}; ${os.cpus().length} CPUs; edge state on ${CFG.edgeState}; CPU layout ${CFG.cpuLayout})`];
    lines.push(`${'rate'.padStart(6)}  ${'echo p50/p99'.padStart(14)}  ${'send→sent p50/p99'.padStart(18)}  ${'send→msg p50/p95/p99'.padStart(22)}  ${'lost'.padStart(5)}  ${'late'.padStart(5)}  ${'e2e/echo p50,p99'.padStart(17)}`);
    for (const r of results) {
      const e = r.echo?.e2e;
      const s = r.switchboard;
      lines.push(
        `${pad(String(r.rate), 6)}  ${pad(`${f1(e?.p50Ms)} / ${f1(e?.p99Ms)}`, 14)}  ${pad(`${f1(s.ack?.p50Ms)} / ${f1(s.ack?.p99Ms)}`, 18)}  ${pad(`${f1(s.e2e?.p50Ms)} / ${f1(s.e2e?.p95Ms)} / ${f1(s.e2e?.p99Ms)}`, 22)}  ${pad(String(s.lost), 5)}  ${pad(String(s.late), 5)}  ${pad(r.vsEcho ? `${r.vsEcho.e2eP50 ?? '-'}×, ${r.vsEcho.e2eP99 ?? '-'}×` : '-', 17)}` +
          (r.enginesRestarted.length || Object.keys(r.socketCloses).length
            ? `  NOT STEADY (${[...r.enginesRestarted.map((e) => `${e} restarted`), ...(Object.keys(r.socketCloses).length ? ['edge dropped sockets'] : [])].join(', ')})`
            : ''),
      );
    }
    if (target.met !== null) lines.push(`target p99 < ${TARGET.p99Ms} ms at ${TARGET.rate} msg/s: ${target.met ? 'MET' : 'MISSED'} (p99 ${f1(target.measuredP99Ms)} ms)`);
    if (Object.keys(logTotals).length) lines.push(`service log lines at warn/error over the run: ${JSON.stringify(logTotals)} (BENCH_VERBOSE=1 shows them)`);
    lines.push(`written to ${path.relative(process.cwd(), CFG.out) || CFG.out}`);
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    progress('stopping …');
    pinning.restore();
    stopping = true;
    for (const ws of sockets) ws.terminate();
    if (echoProc && echoProc.exitCode === null) {
      echoProc.kill('SIGTERM');
      await new Promise((r) => (echoProc!.exitCode !== null ? r(null) : echoProc!.once('exit', r)));
    }
    // The region first: its fan-out would otherwise retry deliveries to a stopped edge.
    for (const s of services.splice(0)) await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(edgeDir, { recursive: true, force: true });
    if (!CFG.keep) await removeNamespace(namespace, regionEnv).catch((err) => progress(`cleanup of ${namespace} incomplete: ${(err as Error).message}`));
    progress('stopped');
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    if (err instanceof Aborted) {
      progress('interrupted');
      process.exit(130);
    }
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
