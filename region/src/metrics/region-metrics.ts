import { Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { PushMetrics } from '../push/push-metrics.ts';
import { MessagePathMetrics } from './message-path.ts';
import { PresenceMetrics } from './presence-metrics.ts';
import { QueueMetrics } from './queue-metrics.ts';

/** Seconds, for HTTP requests and storage operations: from a cached read to a timeout. */
const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * Every metric of a region process, in one prom-client registry served as `GET /metrics`.
 * Names are `switchboard_<subsystem>_<name>`; every duration is a histogram in seconds.
 * - region: HTTP requests, the message path (message-path.ts), and, with `process: true`, the
 *   default Node.js process metrics (`switchboard_region_process_*`, `switchboard_region_nodejs_*`);
 * - storage: every storage call's duration (timed-storage.ts);
 * - queue: lag per consumer group and partition, dead letters (queue-metrics.ts);
 * - fanout: records, failures, deliveries, push jobs (message-path.ts COUNTERS);
 * - presence: heartbeats, changes, pushes, watches, sweeps (presence-metrics.ts);
 * - push: intents, sends by provider and result, retries, dead letters (push/push-metrics.ts).
 * The message path's methods (age, op, time, inc) are here for its call sites.
 */
export class RegionMetrics extends MessagePathMetrics {
  readonly registry: Registry;
  readonly http: Histogram<'method' | 'route' | 'status'>;
  readonly storage: Histogram<'backend' | 'op' | 'result'>;
  readonly queue: QueueMetrics;
  readonly presence: PresenceMetrics;
  readonly push: PushMetrics;

  /** `process`: also the default process metrics (once per process: they hook the GC and the event loop). */
  constructor(opts: { process?: boolean } = {}) {
    const registry = new Registry();
    super(registry);
    this.registry = registry;
    const registers = [registry];
    this.http = new Histogram({ name: 'switchboard_region_http_request_duration_seconds', help: 'HTTP requests to the region by method, route pattern and status; _count counts them', labelNames: ['method', 'route', 'status'], buckets: LATENCY_BUCKETS_S, registers });
    this.storage = new Histogram({ name: 'switchboard_storage_operation_duration_seconds', help: 'Storage calls by backend, operation and result (ok, error)', labelNames: ['backend', 'op', 'result'], buckets: LATENCY_BUCKETS_S, registers });
    this.queue = new QueueMetrics(registry);
    this.presence = new PresenceMetrics(registry);
    this.push = new PushMetrics(registry);
    if (opts.process) collectDefaultMetrics({ register: registry, prefix: 'switchboard_region_' });
  }

  /** Prometheus text exposition format 0.0.4. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
