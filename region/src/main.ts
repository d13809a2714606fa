import { Tracing } from './tracing/tracing.ts';
import { serve } from '@hono/node-server';
import { createApp } from './app.ts';
import { createBackends } from './backends.ts';
import { ConfigError, loadConfig, type RegionRole } from './config.ts';
import { deliverToEdge, pushPresence } from './edge-client.ts';
import { coalescingDeliver, fanoutHandlers } from './fanout/fanout.ts';
import { startCpuProfile } from './cpu-profile.ts';
import { createLogger, errorFields } from './log.ts';
import { RegionMetrics } from './metrics/region-metrics.ts';
import { serveMetrics } from './metrics/metrics-server.ts';
import { timedStorage } from './metrics/timed-storage.ts';
import { MemoryPushGate } from './push/gate-memory.ts';
import type { PushGate } from './push/gate.ts';
import { pushKey, type PushIntent } from './push/intents.ts';
import { createProviders } from './push/providers-config.ts';
import { RegistrationsCache } from './push/registrations-cache.ts';
import { PushWorker } from './push/worker.ts';
import { Contacts } from './presence/contacts.ts';
import { PresenceService } from './presence/presence-service.ts';
import { CONSUMER_GROUPS, TOPICS, dlqOf, type Subscription } from './queue/queue.ts';

const log = createLogger({ svc: 'region' });

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      log.error('invalid configuration', { err: err.message });
      process.exit(2);
    }
    throw err;
  }
  const profileTo = process.env.REGION_CPU_PROFILE;
  const stopProfile = profileTo ? await startCpuProfile(profileTo) : null;
  const metrics = new RegionMetrics({ process: true });
  const tracing = new Tracing({ endpoint: cfg.otlpEndpoint, service: `switchboard-region-${[...cfg.roles].join('-')}` });
  const backends = await createBackends(cfg, log, { queueObserver: metrics.queue });
  const { queue, routes, presence } = backends;
  const storage = timedStorage(backends.storage, metrics.storage);
  metrics.queue.readLagFrom(queue, CONSUMER_GROUPS);
  log.info('starting', { region: cfg.name, roles: [...cfg.roles], storage: storage.name, queue: queue.name, routes: routes.name, presence: presence.name });
  await storage.init();
  await queue.init([TOPICS.fanout, TOPICS.push, dlqOf(TOPICS.fanout), dlqOf(TOPICS.push)]);

  const pushMetrics = metrics.push;
  const { providers, recording } = createProviders(cfg.push.providers, log.child({ component: 'push' }));
  const gate: PushGate = cfg.redis ? new (await import('./push/gate-redis.ts')).RedisPushGate(cfg.redis, log.child({ component: 'push-gate' })) : new MemoryPushGate();
  const registrations = new RegistrationsCache(storage);
  const presenceService = new PresenceService({
    presence,
    contacts: new Contacts(storage),
    log: log.child({ component: 'presence' }),
    ttlMs: cfg.presence.ttlSeconds * 1000,
    push: (edge, events) => pushPresence(cfg.internalSecret, edge, events),
    metrics: metrics.presence,
  });
  // Presence expiry is a worker, like fan-out: processes that run fan-out workers sweep.
  const runs = (role: RegionRole) => cfg.roles.has(role);
  if (runs('fanout')) presenceService.start(cfg.presence.sweepMs);
  const subs: Subscription[] = [];
  if (runs('push')) {
    const worker = new PushWorker({
      queue,
      routes,
      store: storage,
      gate,
      providers,
      metrics: pushMetrics,
      log: log.child({ component: 'push' }),
      settings: { preview: cfg.push.preview, coalesceMs: cfg.push.coalesceSeconds * 1000, rate: { perHour: cfg.push.ratePerHour, burst: cfg.push.rateBurst }, maxAttempts: cfg.push.maxAttempts, retryBaseMs: cfg.push.retryBaseMs },
      preview: async (conv, seq) => {
        const m = (await storage.readAfter(conv, seq - 1, 1))[0];
        return m && m.seq === seq && !m.sys ? { from: m.from, text: m.body.slice(0, 120) } : null;
      },
    });
    subs.push(...(await worker.start()));
    log.info('push workers started', { providers: providers.map((p) => ({ name: p.name, serves: p.serves, health: p.health() })) });
  }
  if (runs('fanout')) {
    const deliver = coalescingDeliver((edge, batch) => deliverToEdge(cfg.internalSecret, edge, batch), { metrics });
    const enqueuePush = (intents: PushIntent[]) => queue.publish(TOPICS.push, intents.map((i) => ({ key: pushKey(i.user, i.device), value: i })));
    const fanout = fanoutHandlers({ storage, routes, log: log.child({ component: 'fanout' }), deliver, metrics, enqueuePush, pushRegistrations: (users) => registrations.of(users), tracing });
    // A conversation's waiting records go out together (FANOUT_BATCH; 1 turns it off).
    subs.push(await queue.subscribe(TOPICS.fanout, 'fanout', fanout.one, cfg.fanoutBatch > 1 ? { batch: { handler: fanout.many, max: cfg.fanoutBatch } } : {}));
  }

  let server: ReturnType<typeof serve> | undefined;
  if (runs('api')) {
    const app = createApp({
      region: cfg.name,
      tracing,
      storage,
      queue,
      routes,
      log,
      internalSecret: cfg.internalSecret,
      routeTtlMs: cfg.routeTtlSeconds * 1000,
      metrics,
      presence: presenceService,
      push: { cache: registrations, gate, recording, metrics: pushMetrics, providers },
      keys: { claimRate: { perMinute: cfg.keys.claimPerMinute, burst: cfg.keys.claimBurst } },
    });
    await new Promise<void>((resolve) => {
      server = serve({ fetch: app.fetch, hostname: cfg.host, port: cfg.port }, (info) => {
        log.info('listening', { url: `http://${cfg.host}:${info.port}` });
        resolve();
      });
    });
  }

  // Workers without the API have their metrics served on a port of their own.
  const metricsServer = cfg.metricsPort ? await serveMetrics(metrics, cfg.host, cfg.metricsPort) : null;
  if (metricsServer) log.info('metrics listening', { url: `${metricsServer.url}/metrics` });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    const force = setTimeout(() => {
      log.error('shutdown timed out; exiting');
      process.exit(1);
    }, 15_000);
    force.unref();
    await closeServer(server);
    await metricsServer?.close();
    for (const s of subs) await s.stop().catch((err) => log.warn('stopping consumer failed', errorFields(err)));
    await presenceService.stop().catch((err) => log.warn('stopping presence sweep failed', errorFields(err)));
    await presence.close().catch((err) => log.warn('closing presence failed', errorFields(err)));
    for (const p of providers) await p.close().catch((err) => log.warn('closing a push provider failed', { provider: p.name, ...errorFields(err) }));
    await gate.close().catch((err) => log.warn('closing the push gate failed', errorFields(err)));
    await queue.close().catch((err) => log.warn('closing queue failed', errorFields(err)));
    await routes.close().catch((err) => log.warn('closing routes failed', errorFields(err)));
    await storage.close().catch((err) => log.warn('closing storage failed', errorFields(err)));
    if (stopProfile) await stopProfile().then(() => log.info('cpu profile written', { file: profileTo }), (err) => log.warn('writing the cpu profile failed', errorFields(err)));
    await tracing.close().catch((err) => log.warn('exporting the last spans failed', errorFields(err)));
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/** In-flight requests get this long to finish once the region stops taking new ones. */
const REQUEST_DRAIN_MS = 5_000;

/**
 * Stops taking connections and requests, lets those in flight finish (up to REQUEST_DRAIN_MS) and
 * closes the rest. Keep-alive connections the edge reuses between requests never become idle long
 * enough for a plain `close()` (it waited for them until the force timeout): each is closed as
 * soon as it has no request in flight.
 */
async function closeServer(server: ReturnType<typeof serve> | undefined): Promise<void> {
  if (!server) return;
  const http = server as import('node:http').Server;
  const closed = new Promise<void>((r) => http.close(() => r()));
  const idle = setInterval(() => http.closeIdleConnections(), 50);
  http.closeIdleConnections();
  const late = setTimeout(() => {
    log.warn('requests still in flight after the drain; closing their connections', { afterMs: REQUEST_DRAIN_MS });
    http.closeAllConnections();
  }, REQUEST_DRAIN_MS);
  await closed;
  clearInterval(idle);
  clearTimeout(late);
}

main().catch((err) => {
  log.error('fatal', errorFields(err));
  process.exit(1);
});
