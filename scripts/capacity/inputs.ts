/**
 * The capacity model's named inputs: every assumption has a value, a unit and a source. Sources
 * are the seed (the targets), a published anchor cited from ../shared/design (OPS = operations.md,
 * GW = gateway.md, PUSH = push.md), this repository's own code, or an assumption marked (A).
 * Measured inputs name the .bench file and key that replace the default (bench.ts reads them).
 */

export type Origin = 'seed' | 'anchor' | 'code' | 'assumption' | 'measured' | 'default' | 'override';

export interface InputDef {
  name: string;
  value: number;
  unit: string;
  /** Where the default comes from. */
  source: string;
  origin: Origin;
  /** For inputs a bench measures: the command and the .bench file + key it is read from. */
  bench?: { command: string; key: string };
  /** Accepted range (inclusive); `--set` outside it is an error. */
  min?: number;
  max?: number;
}

export interface Input extends InputDef {
  /** Set when a bench measured or `--set` replaced the default: the default it replaced. */
  defaultValue?: number;
}

export type Inputs = Record<string, Input>;

const OPS = '../shared/design/operations.md';
const GW = '../shared/design/gateway.md';
const PUSH = '../shared/design/push.md';

const DEFS: InputDef[] = [
  // --- the seed's targets
  { name: 'dailyUsers', value: 500e6, unit: 'users/day', origin: 'seed', source: 'seed: 500M daily users', min: 1 },
  { name: 'messagesPerDay', value: 100e9, unit: 'msg/day', origin: 'seed', source: 'seed: 100B messages/day', min: 1 },
  { name: 'peakMessagesPerSec', value: 5e6, unit: 'msg/s', origin: 'seed', source: `seed: ~5M/s at peak (${OPS} "peak 5M/s (A)")`, min: 1 },
  { name: 'concurrentSockets', value: 50e6, unit: 'sockets', origin: 'seed', source: 'seed: 50M concurrent sockets', min: 1 },

  // --- traffic shape
  { name: 'deliveriesPerMessage', value: 3, unit: 'socket deliveries/msg', origin: 'assumption', source: '(A) online recipient devices + the sender\'s other devices per message, mostly direct and small groups', min: 0 },
  { name: 'gatewaysPerMessage', value: 3, unit: 'gateway calls/msg', origin: 'assumption', source: `(A) one call per gateway holding a recipient (${GW}: "called once per gateway"); at 50M sockets a small conversation's devices sit on distinct gateways, so = deliveries`, min: 0 },
  { name: 'headroom', value: 2, unit: '×', origin: 'anchor', source: `${OPS} Kafka: "× 2 headroom"; applied to every throughput-bound tier`, min: 1 },
  { name: 'regions', value: 3, unit: 'regions', origin: 'assumption', source: '(A) issue 22: a home region per conversation; each region a Cassandra DC', min: 1 },
  { name: 'daysPerMonth', value: 30, unit: 'days', origin: 'assumption', source: `(A) as ${OPS}'s monthly figures`, min: 1 },

  // --- edge: gateway Durable Objects
  { name: 'socketsPerGatewayMax', value: 32768, unit: 'sockets/DO', origin: 'anchor', source: `${GW}: hibernation API "≤ 32,768 sockets per object" [S]`, min: 1 },
  { name: 'edgeKbPerSocket', value: 77, unit: 'KB/socket', origin: 'default', source: `${GW}: gateway prototype ≈77 KB per idle socket (no deflate)`, bench: { command: 'npm run bench:connections', key: '.bench/connections.json results[target=edge].perSocketKb' }, min: 0.001 },
  { name: 'doMemoryMb', value: 128, unit: 'MB/DO', origin: 'anchor', source: `${OPS} limits: Worker 128 MB; ${GW}: "duration bills 128 MB while active"`, min: 1 },
  { name: 'doMemoryUsable', value: 0.5, unit: 'fraction', origin: 'assumption', source: '(A) share of an object\'s 128 MB given to idle sockets (the rest: isolate, code, windows, caches). Conservative: on Cloudflare a hibernated socket is held by the runtime, outside the isolate; raise it to relax the memory bound', min: 0.01, max: 1 },
  { name: 'edgeDeliveriesPerCore', value: 30000, unit: 'deliveries/s per core', origin: 'default', source: `${GW}: "30,000 deliveries/s ≈ 0.9–1.1 core of workerd"`, bench: { command: 'npm run bench:fanout', key: '.bench/fanout.json switchboard[max rate].deliveriesPerSec / cpuPercent["edge workerd"]' }, min: 1 },
  { name: 'doRequestsPerSecMax', value: 1000, unit: 'req/s per DO', origin: 'anchor', source: `${GW}: "Soft limit ~1,000 req/s" [L]`, min: 1 },
  { name: 'edgeConnectsPerSecPerGateway', value: 1900, unit: 'connects/s per DO', origin: 'default', source: `${GW}: "Connect rate: gateway ≈1,900–3,100/s" (low end)`, bench: { command: 'npm run bench:connections', key: '.bench/connections.json results[target=edge].connect.perSec' }, min: 1 },
  { name: 'connectsPerUserPerDay', value: 10, unit: 'connects/user/day', origin: 'assumption', source: '(A) app opens, network changes and reconnects per daily user', min: 0 },
  { name: 'reconnectStormSeconds', value: 60, unit: 's', origin: 'assumption', source: `(A) every socket reconnects within this after a deploy (${GW}: "Deploys restart objects and close their WebSockets"; EDGE_DRAIN_SPREAD_MS spreads it)`, min: 1 },

  // --- edge: ConversationDOs and billing shape
  { name: 'activeConversationMsgPerSec', value: 0.5, unit: 'msg/s per active conversation', origin: 'assumption', source: '(A) a busy conversation at peak; sets how many ConversationDOs are awake', min: 0.0001 },
  { name: 'conversationMsgPerSecMax', value: 500, unit: 'msg/s per ConversationDO', origin: 'anchor', source: `${GW}: "200–500 with storage writes; shard beyond that" [R]`, min: 1 },
  { name: 'wsInboundFramesPerMessage', value: 1, unit: 'frames/msg', origin: 'anchor', source: `${OPS}: "WS in at 20:1 gives 5B/day" counts the send frame`, min: 0 },
  { name: 'ackFramesPerDelivery', value: 1, unit: 'ack frames/delivery', origin: 'assumption', source: '(A) README "How a message travels" 6: acks fold per conversation per 250 ms; at chat rates a conversation seldom gets two messages in 250 ms, so each delivery is acked in its own frame', min: 0 },
  { name: 'wsInboundBillingRatio', value: 20, unit: 'frames/billed request', origin: 'anchor', source: `${OPS}/${GW}: "incoming WS messages bill 20:1, outgoing ones are free"`, min: 1 },
  { name: 'doCallBatching', value: 1, unit: 'messages/call', origin: 'assumption', source: `(A) no batching: one gateway → ConversationDO call per send and one ConversationDO → gateway call per gateway of members (README "How a message travels" 2–3; ${OPS}: "each 3T/month ≈ $450k/month unless batched")`, min: 1 },
  { name: 'doActiveMsPerMessage', value: 5, unit: 'ms of DO wall time/msg', origin: 'anchor', source: `${OPS}: "DO duration at 5 ms active per message (A)"`, min: 0 },
  { name: 'gatewayAwakeShare', value: 1, unit: 'fraction of the month', origin: 'assumption', source: `(A) a gateway of hundreds of busy sockets never idles the 10 s it needs to hibernate (${GW}: lifecycle [H]; "duration bills 128 MB while active")`, min: 0, max: 1 },
  { name: 'doRowWritesPerMessage', value: 5, unit: 'SQLite rows/msg', origin: 'code', source: 'edge/src/conversation/sequencer.ts: INSERT dedupe, messages, outbox per message; DELETE outbox on ack, DELETE messages past the window (a floor: the dedupe autoindex and outbox AUTOINCREMENT\'s sqlite_sequence update are further row writes, not counted)', min: 0 },
  { name: 'workerRequestsPerMessage', value: 0.1, unit: 'Worker requests/msg', origin: 'assumption', source: '(A) the region\'s signed /internal/deliver to an edge Worker, only for members the live path missed (README "How a message travels" 5); the outbox drain to the region is the DO\'s own subrequest', min: 0 },

  // --- region cores
  { name: 'regionCpuMsPerMessage', value: 0.5, unit: 'CPU ms/msg', origin: 'default', source: '(A) no published figure: store, publish, consume, resolve routes', bench: { command: 'npm run bench:latency', key: '.bench/latency.json results[max rate].cpuMsPerMessage.region' }, min: 0 },
  { name: 'regionCpuUsPerDelivery', value: 20, unit: 'CPU µs/delivery', origin: 'default', source: '(A) routes lookup and deliver-request share per recipient device', bench: { command: 'npm run bench:fanout', key: '.bench/fanout.json switchboard[max rate] cpuPercent.region / deliveriesPerSec' }, min: 0 },
  { name: 'coresPerRegionHost', value: 16, unit: 'cores/host', origin: 'assumption', source: '(A) host size for the region core fleet', min: 1 },
  { name: 'presenceHeartbeatSeconds', value: 30, unit: 's', origin: 'code', source: 'region/src/config.ts PRESENCE_TTL_SECONDS 90; a beat every third of it (A)', min: 1 },
  { name: 'presenceBeatsPerSecPerProcess', value: 20000, unit: 'heartbeats/s per region process', origin: 'default', source: '(A) batched heartbeats one region process absorbs', bench: { command: 'npm run bench:presence', key: '.bench/presence.json steadyState[max].beatsPerSecond' }, min: 1 },

  // --- Cassandra
  { name: 'cassandraWritesPerMessage', value: 1, unit: 'writes/msg', origin: 'assumption', source: '(A) appendMessages: one row per message (bench:engines measures exactly this op)', min: 0 },
  { name: 'cassandraRf', value: 3, unit: 'replicas/DC', origin: 'anchor', source: `${OPS}: "5M writes/s × RF 3"; NTS RF per DC`, min: 1 },
  { name: 'cassandraDcsPerMessage', value: 3, unit: 'DCs', origin: 'assumption', source: `(A) issue 22 / ${OPS}: NTS replicates each home DC's writes to the others asynchronously (= regions)`, min: 1 },
  { name: 'cassandraWritesPerNodePerSec', value: 50000, unit: 'replica writes/s per node', origin: 'anchor', source: `${OPS}: "≈ 300 nodes at 50k/node (A)"; Netflix 2011: 288 nodes, 1.1M writes/s at RF 3 ≈ 3.8k/node (--set cassandraWritesPerNodePerSec=3800)`, min: 1 },
  { name: 'cassandraBytesPerMessage', value: 200, unit: 'B/msg', origin: 'anchor', source: `${OPS}: "200 B/msg (A)"; bench:engines writes 200-byte bodies`, min: 1 },
  { name: 'retentionDays', value: 30, unit: 'days', origin: 'assumption', source: `(A) TTL on messages (${OPS}: "60 TB/day raw: TTL or tiering")`, min: 0 },
  { name: 'cassandraTbPerNode', value: 2, unit: 'TB/node', origin: 'assumption', source: '(A) usable data per node, leaving compaction space', min: 0.01 },
  { name: 'cassandraCoresPerNode', value: 16, unit: 'cores/node', origin: 'assumption', source: '(A) node size (priceCassandraNodeMonth prices this node)', min: 1 },
  { name: 'cassandraCpuMsPerWrite', value: 0.32, unit: 'CPU ms/replica write', origin: 'default', source: '(A) what the 50k writes/s per 16-core node anchor implies (16,000 ms/s ÷ 50,000)', bench: { command: 'npm run bench:latency', key: '.bench/latency.json results[max rate].cpuMsPerMessage.cassandra (one node, RF 1)' }, min: 0 },
  { name: 'cassandraWriteMs', value: 1, unit: 'ms/write', origin: 'default', source: '(A) LOCAL_QUORUM append latency', bench: { command: 'npm run bench:engines', key: '.bench/engines.json cassandra.p50Ms' }, min: 0 },

  // --- Kafka
  { name: 'kafkaRecordsPerMessage', value: 1, unit: 'records/msg', origin: 'assumption', source: '(A) one fanout record per message (push intents counted separately)', min: 0 },
  { name: 'kafkaRecordBytes', value: 1000, unit: 'B/record', origin: 'anchor', source: `${OPS}: "Kafka: 1 KB/msg (A)"`, min: 1 },
  { name: 'kafkaRf', value: 3, unit: 'replicas', origin: 'assumption', source: `(A) topic replication factor (${OPS}'s 25 brokers omit it)`, min: 1 },
  { name: 'kafkaBrokerMBps', value: 200, unit: 'MB/s per broker', origin: 'anchor', source: `${OPS}: "Kafka p99 5 ms at 200 MB/s" (confluent.io, Aug 2020)`, min: 1 },
  { name: 'kafkaPartitionsPerBrokerMax', value: 4000, unit: 'partitions/broker', origin: 'anchor', source: `${OPS}: "≤ 4k partitions/broker" (confluent.io, 2018)`, min: 1 },
  { name: 'kafkaRecordsPerPartitionPerSec', value: 5000, unit: 'records/s per partition', origin: 'assumption', source: '(A) what one fan-out consumer drains from one partition, in key order', min: 1 },
  { name: 'kafkaCoresPerBroker', value: 16, unit: 'cores/broker', origin: 'assumption', source: '(A) broker size (priceKafkaBrokerMonth prices this broker)', min: 1 },
  { name: 'kafkaCpuMsPerRecord', value: 0.08, unit: 'CPU ms/record replica', origin: 'default', source: '(A) what 200 MB/s of 1 KB records per 16-core broker implies (16,000 ms/s ÷ 200,000)', bench: { command: 'npm run bench:latency', key: '.bench/latency.json results[max rate].cpuMsPerMessage.kafka (one broker, RF 1)' }, min: 0 },
  { name: 'kafkaPublishMs', value: 2, unit: 'ms/publish', origin: 'default', source: `(A) idempotent acks=-1 publish (${OPS}: LinkedIn p99 3 ms)`, bench: { command: 'npm run bench:engines', key: '.bench/engines.json kafka.p50Ms' }, min: 0 },

  // --- Redis
  { name: 'redisOpsPerMessage', value: 2, unit: 'ops/msg', origin: 'anchor', source: `${OPS}: "Redis: 2 ops/msg (A)"`, min: 0 },
  { name: 'redisOpsPerHeartbeat', value: 1, unit: 'ops/beat', origin: 'assumption', source: '(A) one presence write per device beat (pipelined per gateway batch)', min: 0 },
  { name: 'redisOpsPerConnect', value: 3, unit: 'ops/connect', origin: 'assumption', source: '(A) route set, presence up, revocation check', min: 0 },
  { name: 'redisOpsPerShardPerSec', value: 150000, unit: 'ops/s per shard', origin: 'anchor', source: `${OPS}: "Redis 120–170k ops/s, ≤ 1M pipelined" (antirez gist, Jan 2018)`, min: 1 },

  // --- push
  { name: 'pushShareOfMessages', value: 0.2, unit: 'pushes/msg', origin: 'anchor', source: `${OPS}: "Push: 20 % of peak (A)"`, min: 0 },
  { name: 'fcmShareOfPushes', value: 0.7, unit: 'fraction', origin: 'assumption', source: '(A) Android share of push registrations', min: 0, max: 1 },
  { name: 'fcmQuotaPerMinute', value: 600000, unit: 'msgs/min per project', origin: 'anchor', source: `${OPS}/${PUSH}: "FCM 600k msgs/min per project" (firebase throttling-and-quotas)`, min: 1 },
  { name: 'pushSendsPerSecPerProcess', value: 2000, unit: 'sends/s per push process', origin: 'default', source: '(A) one push worker process against a provider', bench: { command: 'npm run bench:push', key: '.bench/push.json sections.providers.{apns,fcm}[].perSecond (the slower provider\'s best)' }, min: 1 },

  // --- prices (monthly unless noted)
  { name: 'priceDoRequestsPerM', value: 0.15, unit: '$/M requests', origin: 'anchor', source: `${OPS}: "DO $0.15/M requests" (CF/durable-objects/platform/pricing/)`, min: 0 },
  { name: 'priceDoGbSecondsPerM', value: 12.5, unit: '$/M GB-s', origin: 'anchor', source: `${OPS}: "$12.50/M GB-s"`, min: 0 },
  { name: 'priceDoRowWritesPerM', value: 1, unit: '$/M rows written', origin: 'anchor', source: `${OPS}: "$1/M row writes"`, min: 0 },
  { name: 'doBilledGb', value: 0.128, unit: 'GB', origin: 'anchor', source: `${GW}: "duration bills 128 MB while active"`, min: 0 },
  { name: 'priceWorkerRequestsPerM', value: 0.3, unit: '$/M requests', origin: 'assumption', source: '(A) Workers paid list price, CF/workers/platform/pricing/ (not in ../shared/design)', min: 0 },
  { name: 'priceCoreMonth', value: 25, unit: '$/core-month', origin: 'assumption', source: '(A) cloud vCPU with its memory, on-demand; no anchor in ../shared/design', min: 0 },
  { name: 'priceCassandraNodeMonth', value: 1500, unit: '$/node-month', origin: 'assumption', source: '(A) 16 cores, 64 GB, 2 TB NVMe; no anchor in ../shared/design', min: 0 },
  { name: 'priceKafkaBrokerMonth', value: 1200, unit: '$/broker-month', origin: 'assumption', source: '(A) broker host with disks; no anchor in ../shared/design', min: 0 },
  { name: 'priceRedisShardMonth', value: 150, unit: '$/shard-month', origin: 'assumption', source: '(A) one core and its memory per shard; no anchor in ../shared/design', min: 0 },
];

/** A fresh copy of every input at its default. */
export function defaultInputs(): Inputs {
  return Object.fromEntries(DEFS.map((d) => [d.name, { ...d, bench: d.bench ? { ...d.bench } : undefined }]));
}

export class InputError extends Error {}

/** Replaces an input's value, keeping what it replaced. Throws InputError on an unknown name or a bad value. */
export function setInput(inputs: Inputs, name: string, raw: string | number, origin: Origin, source: string): void {
  const input = inputs[name];
  if (!input) throw new InputError(`unknown input "${name}" (npm run capacity -- --inputs lists them)`);
  const value = typeof raw === 'number' ? raw : parseNumber(raw);
  if (value === null || !Number.isFinite(value)) throw new InputError(`input "${name}": "${raw}" is not a number`);
  if (input.min !== undefined && value < input.min) throw new InputError(`input "${name}": ${value} is below its minimum ${input.min} (${input.unit})`);
  if (input.max !== undefined && value > input.max) throw new InputError(`input "${name}": ${value} is above its maximum ${input.max} (${input.unit})`);
  if (input.defaultValue === undefined) input.defaultValue = input.value;
  input.value = value;
  input.origin = origin;
  input.source = source;
}

/** "5e6", "5000000", "5_000_000", "5M", "2k", "1.5G" → number; anything else → null. */
export function parseNumber(s: string): number | null {
  const m = /^\s*(-?[0-9][0-9_]*(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)\s*([kKmMgGtT]?)\s*$/.exec(s);
  if (!m) return null;
  const mult = { '': 1, k: 1e3, m: 1e6, g: 1e9, t: 1e12 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Number(m[1]!.replace(/_/g, '')) * mult;
}
