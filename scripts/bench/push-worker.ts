/**
 * The `worker` section of `npm run bench:push`: the push worker as REGION_ROLE=push runs it
 * (PushWorker over the region's queue, routes, storage and gate, the real providers against the
 * bench's fakes), fed intents at fixed rates, each for a distinct registered device (so nothing is
 * coalesced or rate limited away). Per rate: intent published → provider answered, p50/p99, beside
 * the provider's send alone inside it (the baseline of the same run: what the worker adds is the
 * difference), and every intent's outcome.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createBackends } from '../../region/src/backends.ts';
import { loadConfig } from '../../region/src/config.ts';
import { silentLogger as silent } from '../../region/src/log.ts';
import { MemoryPushGate } from '../../region/src/push/gate-memory.ts';
import type { PushGate } from '../../region/src/push/gate.ts';
import { pushIntentId, pushKey, type PushIntent } from '../../region/src/push/intents.ts';
import type { PushService } from '../../region/src/push/provider.ts';
import { createProviders } from '../../region/src/push/providers-config.ts';
import { PushMetrics } from '../../region/src/push/push-metrics.ts';
import { PushWorker } from '../../region/src/push/worker.ts';
import { TOPICS } from '../../region/src/queue/queue.ts';
import { connectionInfo } from '../stack/index.ts';
import { dist, type Dist } from './load.ts';
import type { SectionContext } from './push.ts';

export interface WorkerLevel {
  rate: number;
  seconds: number;
  intents: number;
  /** Intents answered by a provider per second of the level (published until the last answer). */
  perSecond: number;
  /** Intent published → the provider's answer back in the worker. */
  intentToProvider: Dist | null;
  /** The provider's send alone (inside the above): the baseline. */
  providerSend: Dist | null;
  /** p99 of the whole path over p99 of the send alone. */
  p99Ratio: number | null;
  outcomes: Record<string, number>;
  /** Intents with no answer when the level gave up waiting (BENCH_SECONDS + 30 s). */
  unanswered: number;
}

export interface WorkerSection {
  engines: 'embedded' | 'real';
  levels: WorkerLevel[];
}


export async function runWorkerSection(ctx: SectionContext): Promise<void> {
  const real = ctx.cfg.real;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-bench-push-'));
  const namespace = `benchpush_${crypto.randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = { ...ctx.fakes.env, NAMESPACE: namespace, INTERNAL_SECRET: crypto.randomBytes(16).toString('hex'), DATA_DIR: dataDir, PUSH_RATE_BURST: '10000', PUSH_RATE_PER_HOUR: '100000' };
  if (real) {
    const info = connectionInfo();
    Object.assign(env, { CASSANDRA_CONTACT_POINTS: info.cassandra.contactPoints.join(','), CASSANDRA_LOCAL_DC: info.cassandra.localDataCenter, KAFKA_BROKERS: info.kafka.brokers.join(','), REDIS_URL: info.redis.url, CASSANDRA_CONSISTENCY: 'LOCAL_ONE' });
  }
  const cfg = loadConfig(env);
  const section: WorkerSection = { engines: real ? 'real' : 'embedded', levels: [] };
  Object.assign(ctx.into, section);
  ctx.progress(`worker: starting on ${section.engines} engines …`);
  const { storage, queue, routes, presence } = await createBackends(cfg, silent);
  const gate: PushGate = cfg.redis ? new (await import('../../region/src/push/gate-redis.ts')).RedisPushGate(cfg.redis, silent) : new MemoryPushGate();
  const { providers } = createProviders(cfg.push.providers, silent);
  // Each send timed, and the intent's answer noted (the worker calls send(reg, msg) with msg.id = intent id).
  const published = new Map<string, number>();
  const answered = new Map<string, { total: number; send: number; kind: string }>();
  for (const p of providers) {
    const send = p.send.bind(p);
    p.send = async (reg, msg) => {
      const t0 = performance.now();
      const out = await send(reg, msg);
      const at = performance.now();
      const from = published.get(msg.id);
      if (from !== undefined) answered.set(msg.id, { total: at - from, send: at - t0, kind: out.kind });
      return out;
    };
  }
  const worker = new PushWorker({ queue, routes, store: storage, gate, providers, metrics: new PushMetrics(), log: silent, settings: { rate: { perHour: 100_000, burst: 10_000 } } });
  try {
    await storage.init();
    const subs = await worker.start();
    try {
      // Warm-up, not scored: provider sessions, tokens and the queue's consumers settle.
      await level(100, 1, 'warm-up');
      for (const rate of ctx.cfg.rates) {
        if (ctx.signal.aborted) return;
        section.levels.push(await level(rate));
      }
    } finally {
      for (const s of subs) await s.stop().catch(() => {});
    }
  } finally {
    for (const p of providers) await p.close().catch(() => {});
    await gate.close().catch(() => {});
    await queue.close().catch(() => {});
    await routes.close().catch(() => {});
    await presence.close().catch(() => {});
    await storage.close().catch(() => {});
    fs.rmSync(dataDir, { recursive: true, force: true });
  }

  async function level(rate: number, seconds = ctx.cfg.seconds, name = `@${rate}/s`): Promise<WorkerLevel> {
    const total = rate * seconds;
    const services: PushService[] = ctx.providers;
    const devices = Array.from({ length: total }, (_, i) => ({ user: `${name === 'warm-up' ? 'w' : 'r'}${rate}u${i}`, device: 'phone', service: services[i % services.length]! }));
    ctx.progress(`worker ${name}: registering ${total.toLocaleString('en-US')} devices …`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < devices.length) {
          const d = devices[next++]!;
          const token = d.service === 'apns' ? `a0${crypto.createHash('sha256').update(d.user).digest('hex').slice(2)}` : `f0:${d.user}`;
          await storage.registerPush({ user: d.user, device: d.device, service: d.service, token, ...(d.service === 'apns' ? { env: 'production' as const } : {}) }, Date.now() - 1000);
        }
      }),
    );
    ctx.progress(`worker ${name}: ${seconds} s of intents …`);
    const ids: string[] = [];
    const t0 = performance.now();
    const ticker = setInterval(() => {
      const done = ids.filter((id) => answered.has(id)).length;
      ctx.progress(`worker ${name}: ${((performance.now() - t0) / 1000).toFixed(0)} s, ${ids.length} published, ${done} answered`);
    }, 1000);
    try {
      // Published in 10 ms ticks, as fan-out publishes a message's intents together.
      let sent = 0;
      while (sent < total && !ctx.signal.aborted) {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
        const batch: PushIntent[] = [];
        const now = Date.now();
        for (; sent < due; sent++) {
          const d = devices[sent]!;
          const id = pushIntentId(`bench${name === 'warm-up' ? 'w' : rate}`, sent + 1, d.user, d.device);
          batch.push({ kind: 'push', id, user: d.user, device: d.device, conv: 'bench', seq: sent + 1, from: 'sender', ts: now, expireAt: now + 3_600_000, attempts: 0 });
          ids.push(id);
        }
        if (batch.length) {
          const at = performance.now();
          for (const i of batch) published.set(i.id, at);
          await queue.publish(TOPICS.push, batch.map((i) => ({ key: pushKey(i.user, i.device), value: i })));
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      const deadline = performance.now() + 30_000;
      while (!ctx.signal.aborted && ids.some((id) => !answered.has(id)) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      clearInterval(ticker);
    }
    const got = ids.map((id) => answered.get(id)).filter((a) => a !== undefined);
    const elapsed = (performance.now() - t0) / 1000;
    const outcomes: Record<string, number> = {};
    for (const a of got) outcomes[a.kind] = (outcomes[a.kind] ?? 0) + 1;
    const whole = dist(got.map((a) => a.total));
    const send = dist(got.map((a) => a.send));
    for (const id of ids) published.delete(id), answered.delete(id);
    const l: WorkerLevel = {
      rate,
      seconds: Math.round(elapsed * 100) / 100,
      intents: ids.length,
      perSecond: Math.round(got.length / elapsed),
      intentToProvider: whole,
      providerSend: send,
      p99Ratio: whole && send && send.p99Ms > 0 ? Math.round((whole.p99Ms / send.p99Ms) * 100) / 100 : null,
      outcomes,
      unanswered: ids.length - got.length,
    };
    ctx.progress(`worker ${name}: ${l.perSecond}/s answered, intent → provider p50 ${whole?.p50Ms} p99 ${whole?.p99Ms} ms (send alone p99 ${send?.p99Ms} ms), ${l.unanswered} unanswered`);
    return l;
  }
}

export function printWorker(section: WorkerSection | undefined): void {
  if (!section?.levels.length) return;
  const rows = [['intents/s', 'answered/s', 'p50 ms', 'p95 ms', 'p99 ms', 'send p50', 'send p99', 'p99 ×send', 'outcomes', 'unanswered']];
  for (const l of section.levels) {
    const w = l.intentToProvider;
    const s = l.providerSend;
    rows.push([String(l.rate), String(l.perSecond), String(w?.p50Ms ?? '-'), String(w?.p95Ms ?? '-'), String(w?.p99Ms ?? '-'), String(s?.p50Ms ?? '-'), String(s?.p99Ms ?? '-'), String(l.p99Ratio ?? '-'), Object.entries(l.outcomes).map(([k, v]) => `${k} ${v}`).join(', '), String(l.unanswered)]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log(`\npush worker, intent published → provider answered (${section.engines} engines; send = the provider's send alone)`);
  for (const r of rows) console.log(r.map((c, i) => (i === 8 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
}
