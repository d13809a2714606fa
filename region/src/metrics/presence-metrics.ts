import { Counter, Histogram, type Registry } from 'prom-client';

/** The presence service's metrics (`switchboard_presence_*`). */
export class PresenceMetrics {
  readonly heartbeats: Counter;
  readonly changes: Counter<'status'>;
  readonly pushes: Counter<'result'>;
  readonly watches: Counter<'result'>;
  readonly expired: Counter;
  readonly sweepSeconds: Histogram;

  constructor(registry: Registry) {
    const registers = [registry];
    this.heartbeats = new Counter({ name: 'switchboard_presence_heartbeats_total', help: 'Device heartbeats applied (connects and beats from the edges)', registers });
    this.changes = new Counter({ name: 'switchboard_presence_changes_total', help: 'Users whose status changed, by new status', labelNames: ['status'], registers });
    this.pushes = new Counter({ name: 'switchboard_presence_pushes_total', help: 'Requests carrying presence changes to edges, by result', labelNames: ['result'], registers });
    this.watches = new Counter({ name: 'switchboard_presence_watch_requests_total', help: 'Watch requests, by result (ok, forbidden, conflict)', labelNames: ['result'], registers });
    this.expired = new Counter({ name: 'switchboard_presence_devices_expired_total', help: 'Devices ended by the sweep (no heartbeat within the TTL)', registers });
    this.sweepSeconds = new Histogram({ name: 'switchboard_presence_sweep_duration_seconds', help: 'Duration of one sweep of expired devices', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers });
    for (const status of ['online', 'offline']) this.changes.inc({ status }, 0);
    for (const result of ['ok', 'failed']) this.pushes.inc({ result }, 0);
  }
}
