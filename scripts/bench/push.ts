/**
 * `npm run bench:push`: notifications per second through each real push provider (APNs over
 * HTTP/2 + jose, FCM through firebase-admin) against the local fakes of region/test/push/fakes,
 * which this bench starts in a child process of its own (so the provider's CPU is not shared with
 * the fake's). Per provider and per concurrency level (BENCH_CONCURRENCY, default 1,16,64,256
 * sends in flight, BENCH_SECONDS each, default 5, after BENCH_WARMUP unmeasured sends, default
 * 200): sends per second and send latency p50/p95/p99, every outcome counted, and the fake's own
 * count of accepted notifications to check against. BENCH_PROVIDERS (default apns,fcm) picks the
 * providers; BENCH_FAKE_LATENCY_MS (default 0) delays each fake answer, as a far service would.
 *
 * The record has one key per section under `sections` (BENCH_SECTIONS, default providers,worker):
 * `providers` is the above; `worker` is the whole push worker (PushWorker as REGION_ROLE=push runs
 * it: queue, routes check, registration read, coalescing gate and rate limit, the provider) fed
 * intents at BENCH_PUSH_RATES intents/s (default 200,1000; each for a distinct registered device,
 * BENCH_SECONDS each), measuring intent published → provider answered p50/p99 beside the provider
 * send alone inside it (the baseline of the same run). Embedded engines (memory queue, SQLite,
 * memory gate) by default; `--real` uses Kafka, Cassandra and Redis of `npm run stack:up`.
 * Writes .bench/push.json (BENCH_OUT) and prints a table;
 * progress every second on stderr; Ctrl-C stops cleanly (providers and fakes closed, what was
 * measured so far written with `interrupted: true`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { silentLogger as silent } from '../../region/src/log.ts';
import type { PushMessage, PushOutcome, PushProvider, PushRegistration, PushService } from '../../region/src/push/provider.ts';
import { ApnsProvider } from '../../region/src/push/provider-apns.ts';
import { FcmProvider } from '../../region/src/push/provider-fcm.ts';
import { loadPushProvidersConfig } from '../../region/src/push/providers-config.ts';
import { ROOT } from '../lib/processes.ts';
import { num } from './env-number.ts';
import { dist, type Dist } from './load.ts';
import { printWorker, runWorkerSection, type WorkerSection } from './push-worker.ts';

const SELF = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------

interface Level {
  concurrency: number;
  seconds: number;
  sends: number;
  perSecond: number;
  latency: Dist | null;
  outcomes: Partial<Record<PushOutcome['kind'], number>>;
  /** Notifications the fake accepted during this level (equals `outcomes.delivered` when all is well). */
  fakeAccepted: number;
}

export interface Fakes {
  env: Record<string, string>;
  counts(): Promise<{ apns: number; fcm: number }>;
  stop(): Promise<void>;
}

async function main(): Promise<void> {
  const CFG = {
    concurrency: (process.env.BENCH_CONCURRENCY?.trim() || '1,16,64,256').split(',').map(Number),
    seconds: num('BENCH_SECONDS', 5, 1, 3600),
    warmup: num('BENCH_WARMUP', 200, 0, 1_000_000),
    providers: (process.env.BENCH_PROVIDERS?.trim() || 'apns,fcm').split(',').map((s) => s.trim()) as PushService[],
    sections: (process.env.BENCH_SECTIONS?.trim() || 'providers,worker').split(',').map((s) => s.trim()),
    rates: (process.env.BENCH_PUSH_RATES?.trim() || '200,1000').split(',').map(Number),
    real: process.argv.includes('--real'),
    fakeLatencyMs: num('BENCH_FAKE_LATENCY_MS', 0, 0, 60_000),
    out: path.resolve(ROOT, process.env.BENCH_OUT || '.bench/push.json'),
  };
  if (!CFG.concurrency.every((c) => Number.isInteger(c) && c > 0 && c <= 10_000)) fail('BENCH_CONCURRENCY: expected comma-separated integers in 1..10000');
  if (!CFG.providers.every((p) => p === 'apns' || p === 'fcm')) fail('BENCH_PROVIDERS: expected apns, fcm or both');
  if (!CFG.rates.every((r) => Number.isInteger(r) && r > 0 && r <= 100_000)) fail('BENCH_PUSH_RATES: expected comma-separated integers in 1..100000');
  for (const s of CFG.sections) if (!(s in SECTIONS)) fail(`BENCH_SECTIONS: expected some of ${Object.keys(SECTIONS).join(', ')}, got ${s}`);

  const progress = (m: string) => process.stderr.write(`bench:push: ${m}\n`);
  const stop = new AbortController();
  const record: Record<string, unknown> = {
    at: new Date().toISOString(),
    host: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    config: { concurrency: CFG.concurrency, seconds: CFG.seconds, warmup: CFG.warmup, fakeLatencyMs: CFG.fakeLatencyMs, rates: CFG.rates, engines: CFG.real ? 'real' : 'embedded' },
    sections: {} as Record<string, unknown>,
  };
  const sections = record.sections as Record<string, unknown>;
  let fakes: Fakes | null = null;
  const write = () => {
    fs.mkdirSync(path.dirname(CFG.out), { recursive: true });
    fs.writeFileSync(CFG.out, JSON.stringify(record, null, 2) + '\n');
  };
  let interrupted = false;
  const onSignal = () => {
    // One Ctrl-C may arrive twice (terminal group and tsx's relay): stop once.
    if (interrupted) return;
    interrupted = true;
    progress('stopping …');
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    progress(`starting the fakes (child process) …`);
    fakes = await startFakes(CFG.fakeLatencyMs);
    progress(`load average ${(record.host as { loadAvg: number[] }).loadAvg.join(' ')} on ${os.cpus().length} cores; concurrency ${CFG.concurrency.join(', ')}, ${CFG.seconds} s each`);
    for (const name of CFG.sections) {
      if (stop.signal.aborted) break;
      sections[name] = {};
      await SECTIONS[name]!({ fakes, providers: CFG.providers, cfg: CFG, progress, signal: stop.signal, into: sections[name] as Record<string, unknown> });
    }
  } finally {
    await fakes?.stop();
    if (interrupted) record.interrupted = true;
    write();
  }
  print(sections);
  progress(`written to ${path.relative(ROOT, CFG.out)}${interrupted ? ' (interrupted)' : ''}`);
  process.exit(interrupted ? 130 : 0);
}

function fail(msg: string): never {
  console.error(`bench:push: ${msg}`);
  process.exit(2);
}

// ---------------------------------------------------------------------------------------------
// Sections.

export interface SectionContext {
  fakes: Fakes;
  providers: PushService[];
  cfg: { concurrency: number[]; seconds: number; warmup: number; rates: number[]; real: boolean };
  progress: (m: string) => void;
  signal: AbortSignal;
  /** The section's part of the record, filled as it goes (so an interrupted run keeps it). */
  into: Record<string, unknown>;
}

const SECTIONS: Record<string, (ctx: SectionContext) => Promise<void>> = {
  /** Each provider's send() alone, against its fake. */
  providers: async (ctx) => {
    const cfg = loadPushProvidersConfig(ctx.fakes.env, { fallback: 'off' });
    for (const service of ctx.providers) {
      if (ctx.signal.aborted) return;
      const provider: PushProvider =
        service === 'apns'
          ? new ApnsProvider({ ...cfg.apns!, log: silent })
          : new FcmProvider({ ...cfg.fcm!, log: silent });
      const levels: Level[] = [];
      ctx.into[service] = levels;
      try {
        ctx.progress(`${service}: warm-up, ${ctx.cfg.warmup} sends …`);
        await drive(provider, service, 16, Infinity, ctx.cfg.warmup, ctx.signal, () => {});
        for (const concurrency of ctx.cfg.concurrency) {
          if (ctx.signal.aborted) return;
          const before = (await ctx.fakes.counts())[service];
          const level = await measure(provider, service, concurrency, ctx.cfg.seconds, ctx.signal, ctx.progress);
          level.fakeAccepted = (await ctx.fakes.counts())[service] - before;
          levels.push(level);
          ctx.progress(`${service} ×${concurrency}: ${level.perSecond.toLocaleString('en-US')}/s, p50 ${level.latency?.p50Ms} ms, p99 ${level.latency?.p99Ms} ms`);
        }
      } finally {
        await provider.close();
      }
    }
  },
  /** The push worker, intents in at a fixed rate: intent published → provider answered. */
  worker: (ctx) => runWorkerSection(ctx),
};


let seq = 0;
function next(service: PushService): { reg: PushRegistration; msg: PushMessage } {
  const n = ++seq;
  const token = service === 'apns' ? `a0${n.toString(16).padStart(16, '0')}` : `f0:${n.toString(36).padStart(12, '0')}`;
  return {
    reg: { user: `u${n % 1000}`, device: `d${n}`, service, token, env: 'production', registeredAt: Date.now() - 60_000 },
    msg: { id: `c${n % 50}:${n}:u${n % 1000}`, conv: `c${n % 50}`, seq: n, expireAt: Date.now() + 3_600_000, collapseId: `c${n % 50}` },
  };
}

/**
 * `concurrency` loops, each sending one notification after the other, until `until` (ms since
 * epoch) or `count` sends in all or the signal. Calls `done` with each send's latency and outcome.
 */
async function drive(provider: PushProvider, service: PushService, concurrency: number, until: number, count: number, signal: AbortSignal, done: (ms: number, out: PushOutcome) => void): Promise<void> {
  let started = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (!signal.aborted && Date.now() < until && started < count) {
        started++;
        const { reg, msg } = next(service);
        const t0 = performance.now();
        const out = await provider.send(reg, msg);
        done(performance.now() - t0, out);
      }
    }),
  );
}

async function measure(provider: PushProvider, service: PushService, concurrency: number, seconds: number, signal: AbortSignal, progress: (m: string) => void): Promise<Level> {
  const latencies: number[] = [];
  const outcomes: Level['outcomes'] = {};
  const t0 = Date.now();
  const ticker = setInterval(() => {
    const s = (Date.now() - t0) / 1000;
    progress(`${service} ×${concurrency}: ${s.toFixed(0)}/${seconds} s, ${latencies.length.toLocaleString('en-US')} sent (${Math.round(latencies.length / s).toLocaleString('en-US')}/s)`);
  }, 1000);
  try {
    await drive(provider, service, concurrency, t0 + seconds * 1000, Infinity, signal, (ms, out) => {
      latencies.push(ms);
      outcomes[out.kind] = (outcomes[out.kind] ?? 0) + 1;
    });
  } finally {
    clearInterval(ticker);
  }
  const elapsed = (Date.now() - t0) / 1000;
  return { concurrency, seconds: Math.round(elapsed * 100) / 100, sends: latencies.length, perSecond: Math.round(latencies.length / elapsed), latency: dist(latencies), outcomes, fakeAccepted: 0 };
}

// ---------------------------------------------------------------------------------------------

async function startFakes(latencyMs: number): Promise<Fakes> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', SELF, '--serve-fakes'], {
    cwd: ROOT,
    env: { ...process.env, BENCH_FAKE_LATENCY_MS: String(latencyMs) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  process.on('exit', () => child.kill('SIGKILL'));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = readline.createInterface({ input: child.stdout! });
  const waiting: Array<(line: string) => void> = [];
  lines.on('line', (line) => waiting.shift()?.(line));
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      waiting.push(resolve);
      void exited.then(() => reject(new Error('the fakes exited')));
    });
  const first = JSON.parse(await nextLine()) as { env: Record<string, string> };
  return {
    env: first.env,
    counts: async () => {
      const reply = nextLine();
      child.stdin!.write('counts\n');
      return JSON.parse(await reply) as { apns: number; fcm: number };
    },
    stop: async () => {
      child.stdin!.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(killer);
    },
  };
}

function print(sections: Record<string, unknown>): void {
  printWorker(sections.worker as WorkerSection | undefined);
  const providers = sections.providers as Record<string, Level[]> | undefined;
  if (!providers) return;
  const rows = [['provider', 'in flight', 'sends/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'sends', 'not delivered', 'fake accepted']];
  for (const [name, levels] of Object.entries(providers)) {
    for (const l of levels) {
      const notDelivered = Object.entries(l.outcomes).filter(([k]) => k !== 'delivered').map(([k, v]) => `${k} ${v}`).join(', ') || '0';
      rows.push([name, String(l.concurrency), l.perSecond.toLocaleString('en-US'), String(l.latency?.p50Ms ?? '-'), String(l.latency?.p95Ms ?? '-'), String(l.latency?.p99Ms ?? '-'), String(l.latency?.maxMs ?? '-'), String(l.sends), notDelivered, String(l.fakeAccepted)]);
    }
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log('\npush providers against local fakes (one Node process each side)');
  for (const r of rows) console.log(r.map((c, i) => (i === 0 || i === 8 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}

// ---------------------------------------------------------------------------------------------
// Entry: the bench, or (child mode) the fakes it starts, served until stdin closes.
// Last in the file: everything above is initialised by then.

if (process.argv.includes('--serve-fakes')) {
  const { FakeApns } = await import('../../region/test/push/fakes/fake-apns.ts');
  const { FakeFcm } = await import('../../region/test/push/fakes/fake-fcm.ts');
  const latencyMs = Number(process.env.BENCH_FAKE_LATENCY_MS || 0);
  const apns = await FakeApns.start({ keep: 0, latencyMs, maxJwtsPerSession: 1000 });
  const fcm = await FakeFcm.start({ keep: 0, latencyMs });
  // Ctrl-C reaches the whole process group: the parent decides when the fakes go (stdin closes).
  process.on('SIGINT', () => {});
  const lines = readline.createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line === 'counts') process.stdout.write(JSON.stringify({ apns: apns.acceptedCount, fcm: fcm.acceptedCount }) + '\n');
  });
  lines.on('close', () => {
    void Promise.all([apns.close(), fcm.close()]).then(() => process.exit(0));
  });
  process.stdout.write(JSON.stringify({ env: { ...apns.env(), ...fcm.env() } }) + '\n');
} else {
  await main();
}
