/**
 * Every metric of the edge: name, type, labels and meaning. The Worker and its Durable Objects
 * count into EdgeMetrics (edge-metrics.ts) by these names; `GET /internal/metrics` renders them as
 * Prometheus text (prometheus.ts) and production writes them to Workers Analytics Engine
 * (analytics.ts). Names follow the region's rule, `switchboard_<subsystem>_<name>`, and every
 * duration is a histogram in seconds. The runtime has no process to measure: no process metrics.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDef {
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** Histograms: upper bounds in seconds (+Inf implied). At most 18, so a data point's doubles fit Analytics Engine's 20. */
  buckets?: readonly number[];
}

/** Region calls and live pushes: from a millisecond to the 10 s call timeout. */
const CALL_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** How long messages wait in a ConversationDO's outbox: the drain coalesces ~1 s; a region outage holds them minutes. */
const OUTBOX_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900];

export const EDGE_METRICS = {
  switchboard_edge_connections: { type: 'gauge', help: "Live WebSockets on each gateway (read when scraped or flushed)", labels: ['gateway'] },
  switchboard_edge_connects_total: { type: 'counter', help: 'WebSockets accepted by gateways', labels: [] },
  switchboard_edge_frames_in_total: { type: 'counter', help: 'Frames received from devices, by frame type (invalid: did not decode)', labels: ['type'] },
  switchboard_edge_errors_total: { type: 'counter', help: 'Typed errors answered, by code and where (frame: an error frame on a socket; http: an HTTP error response)', labels: ['code', 'source'] },
  switchboard_edge_rate_limited_total: { type: 'counter', help: 'Requests refused with rate_limited, by limit (the names of LIMIT_TABLE in limits/limits.ts; queue: a device over its bound of waiting sends or requests)', labels: ['limit'] },
  switchboard_edge_deliveries_total: { type: 'counter', help: "Message frames written to devices' sockets, by path (live: from the ConversationDO; region: the region's fan-out)", labels: ['path'] },
  switchboard_edge_retransmits_total: { type: 'counter', help: 'Unacknowledged message frames written again to a socket', labels: [] },
  switchboard_edge_closes_total: { type: 'counter', help: 'WebSockets closed, by close code and who closed (server: the gateway; client: the device or the network, 1006 when abnormal)', labels: ['code', 'by'] },
  switchboard_edge_region_call_duration_seconds: { type: 'histogram', help: "Calls to the region's internal API, by path and result (ok, error)", labels: ['path', 'result'], buckets: CALL_BUCKETS },
  switchboard_edge_messages_sequenced_total: { type: 'counter', help: 'Messages (and system events) ConversationDOs sequenced and stored', labels: [] },
  switchboard_edge_live_push_age_seconds: { type: 'histogram', help: "A message's age (since sequencing) when a gateway answered its live push: the edge's delivery latency", labels: [], buckets: CALL_BUCKETS },
  switchboard_edge_outbox_drains_total: { type: 'counter', help: "ConversationDO outbox requests to the region, by result (ok, failed: retried with backoff)", labels: ['result'] },
  switchboard_edge_outbox_dead_letters_total: { type: 'counter', help: 'Outbox events the region refused for good (a permanent 4xx), moved to their conversation\'s dead letters for an operator to replay, by event kind', labels: ['kind'] },
  switchboard_edge_outbox_age_seconds: { type: 'histogram', help: 'Age of the oldest message of each outbox batch the region acknowledged: how far the region is behind the edge', labels: [], buckets: OUTBOX_BUCKETS },
} as const satisfies Record<string, MetricDef>;

export type EdgeMetricName = keyof typeof EDGE_METRICS;
type NamesOf<T extends MetricType> = { [K in EdgeMetricName]: (typeof EDGE_METRICS)[K]['type'] extends T ? K : never }[EdgeMetricName];
export type CounterName = NamesOf<'counter'>;
export type GaugeName = NamesOf<'gauge'>;
export type HistogramName = NamesOf<'histogram'>;
