/**
 * The capacity model: inputs → fleet per tier and a monthly cost. Pure (no I/O), so the test can
 * call it with any inputs and check that each figure moves with the inputs it follows from.
 */
import type { Inputs } from './inputs.ts';

/** One way a tier is sized: demand / capacity per unit (× headroom where it applies) = units. */
export interface Bound {
  by: string;
  demand: number;
  demandUnit: string;
  perUnit: number;
  perUnitUnit: string;
  headroom: number;
  /** demand × headroom / perUnit, unrounded. */
  exact: number;
  /** Whole units. */
  units: number;
  /** The input names this bound follows from. */
  from: string[];
}

export interface Tier {
  tier: 'edge' | 'region' | 'cassandra' | 'kafka' | 'redis' | 'push';
  what: string;
  unit: string;
  /** Units of the fleet: the largest bound, or their sum when `sum` (CPU that adds up). */
  units: number;
  combine: 'max' | 'sum';
  bounds: Bound[];
  /** Which bound decides (max), or "sum". */
  binding: string;
  /** Further figures worth printing (name → value with unit). */
  notes: { name: string; value: number; unit: string }[];
}

export interface CostLine {
  tier: Tier['tier'];
  item: string;
  quantity: number;
  quantityUnit: string;
  price: number;
  priceInput: string;
  priceUnit: string;
  /** $ per month. */
  monthly: number;
}

export interface Result {
  peak: { messagesPerSec: number; deliveriesPerSec: number; gatewayCallsPerSec: number; averageMessagesPerSec: number; messagesPerMonth: number };
  tiers: Tier[];
  costs: CostLine[];
  costByTier: Record<Tier['tier'], number>;
  totalMonthly: number;
  mostExpensive: { tier: Tier['tier']; monthly: number; share: number; item: string; itemMonthly: number; why: string };
}

const ceil = (x: number) => (x <= 0 ? 0 : Math.ceil(x - 1e-9));

function bound(by: string, demand: number, demandUnit: string, perUnit: number, perUnitUnit: string, headroom: number, from: string[]): Bound {
  const exact = (demand * headroom) / perUnit;
  return { by, demand, demandUnit, perUnit, perUnitUnit, headroom, exact, units: ceil(exact), from };
}

function tier(t: Tier['tier'], what: string, unit: string, combine: 'max' | 'sum', bounds: Bound[], notes: Tier['notes'] = []): Tier {
  if (combine === 'sum') {
    return { tier: t, what, unit, combine, bounds, units: ceil(bounds.reduce((a, b) => a + b.exact, 0)), binding: 'sum of the rows', notes };
  }
  const top = bounds.reduce((a, b) => (b.exact > a.exact ? b : a));
  return { tier: t, what, unit, combine, bounds, units: top.units, binding: top.by, notes };
}

export function compute(inputs: Inputs): Result {
  const v = (name: string): number => {
    const i = inputs[name];
    if (!i) throw new Error(`capacity model: no input ${name}`);
    return i.value;
  };
  const H = v('headroom');
  const peak = v('peakMessagesPerSec');
  const sockets = v('concurrentSockets');
  const messagesPerMonth = v('messagesPerDay') * v('daysPerMonth');
  const deliveriesPerSec = peak * v('deliveriesPerMessage');
  const gatewayCallsPerSec = peak * v('gatewaysPerMessage');
  const connectsPerSecStorm = sockets / v('reconnectStormSeconds');
  const beatsPerSec = sockets / v('presenceHeartbeatSeconds');
  const connectsPerMonth = v('dailyUsers') * v('connectsPerUserPerDay') * v('daysPerMonth');

  // --- edge: gateway Durable Objects (one thread each, so a core at most)
  const socketBytesPerGateway = v('doMemoryMb') * 2 ** 20 * v('doMemoryUsable');
  const edge = tier('edge', 'gateway Durable Objects', 'gateways', 'max', [
    bound('sockets (hibernation cap per object)', sockets, 'sockets', v('socketsPerGatewayMax'), 'sockets/DO', 1, ['concurrentSockets', 'socketsPerGatewayMax']),
    bound('memory of idle sockets', sockets * v('edgeKbPerSocket') * 1024, 'B', socketBytesPerGateway, 'B/DO', 1, ['concurrentSockets', 'edgeKbPerSocket', 'doMemoryMb', 'doMemoryUsable']),
    bound('deliveries/s (one core per object)', deliveriesPerSec, 'deliveries/s', v('edgeDeliveriesPerCore'), 'deliveries/s per DO', H, ['peakMessagesPerSec', 'deliveriesPerMessage', 'edgeDeliveriesPerCore', 'headroom']),
    bound('requests/s (sends and acks in, calls from ConversationDOs)', peak * (v('wsInboundFramesPerMessage') + v('deliveriesPerMessage') * v('ackFramesPerDelivery') + v('gatewaysPerMessage')), 'req/s', v('doRequestsPerSecMax'), 'req/s per DO', H, ['peakMessagesPerSec', 'wsInboundFramesPerMessage', 'deliveriesPerMessage', 'ackFramesPerDelivery', 'gatewaysPerMessage', 'doRequestsPerSecMax', 'headroom']),
    bound('connects/s in a reconnect storm', connectsPerSecStorm, 'connects/s', v('edgeConnectsPerSecPerGateway'), 'connects/s per DO', 1, ['concurrentSockets', 'reconnectStormSeconds', 'edgeConnectsPerSecPerGateway']),
  ], [
    { name: 'ConversationDOs awake at peak', value: ceil(peak / v('activeConversationMsgPerSec')), unit: 'objects' },
    { name: 'a conversation above this must shard', value: v('conversationMsgPerSecMax'), unit: 'msg/s' },
    { name: 'Worker requests at peak (region deliver)', value: peak * v('workerRequestsPerMessage'), unit: 'req/s' },
    { name: 'Worker requests in a reconnect storm (connects)', value: connectsPerSecStorm, unit: 'req/s' },
    { name: 'workerd CPU for deliveries at peak', value: deliveriesPerSec / v('edgeDeliveriesPerCore'), unit: 'cores' },
    { name: 'sockets per gateway at that count', value: 0, unit: 'sockets/DO' },
  ]);
  edge.notes[edge.notes.length - 1]!.value = Math.round(sockets / Math.max(1, edge.units));

  // --- region cores: CPU adds up
  const region = tier('region', 'region core processes (one core each)', 'cores', 'sum', [
    bound('messages/s (store, publish, consume)', peak * v('regionCpuMsPerMessage'), 'CPU ms/s', 1000, 'CPU ms/s per core', H, ['peakMessagesPerSec', 'regionCpuMsPerMessage', 'headroom']),
    bound('fan-out deliveries/s', deliveriesPerSec * v('regionCpuUsPerDelivery'), 'CPU µs/s', 1e6, 'CPU µs/s per core', H, ['peakMessagesPerSec', 'deliveriesPerMessage', 'regionCpuUsPerDelivery', 'headroom']),
    bound('presence heartbeats/s', beatsPerSec, 'beats/s', v('presenceBeatsPerSecPerProcess'), 'beats/s per core', H, ['concurrentSockets', 'presenceHeartbeatSeconds', 'presenceBeatsPerSecPerProcess', 'headroom']),
  ]);
  region.notes.push({ name: 'hosts', value: ceil(region.units / v('coresPerRegionHost')), unit: `hosts of ${v('coresPerRegionHost')} cores` });
  region.notes.push({ name: 'per region', value: ceil(region.units / v('regions')), unit: 'cores' });

  // --- Cassandra
  const replicaWrites = peak * v('cassandraWritesPerMessage') * v('cassandraRf') * v('cassandraDcsPerMessage');
  const storedBytes = v('messagesPerDay') * v('cassandraBytesPerMessage') * v('cassandraRf') * v('cassandraDcsPerMessage') * v('retentionDays');
  const cassandra = tier('cassandra', 'Cassandra nodes (all DCs)', 'nodes', 'max', [
    bound('replica writes/s', replicaWrites, 'writes/s', v('cassandraWritesPerNodePerSec'), 'writes/s per node', H, ['peakMessagesPerSec', 'cassandraWritesPerMessage', 'cassandraRf', 'cassandraDcsPerMessage', 'cassandraWritesPerNodePerSec', 'headroom']),
    bound('CPU per replica write', replicaWrites * v('cassandraCpuMsPerWrite'), 'CPU ms/s', v('cassandraCoresPerNode') * 1000, 'CPU ms/s per node', H, ['peakMessagesPerSec', 'cassandraWritesPerMessage', 'cassandraRf', 'cassandraDcsPerMessage', 'cassandraCpuMsPerWrite', 'cassandraCoresPerNode', 'headroom']),
    bound('storage (retention × RF × DCs)', storedBytes, 'B', v('cassandraTbPerNode') * 1e12, 'B per node', 1, ['messagesPerDay', 'cassandraBytesPerMessage', 'cassandraRf', 'cassandraDcsPerMessage', 'retentionDays', 'cassandraTbPerNode']),
  ], [
    { name: 'raw data per day (RF 1, one DC)', value: v('messagesPerDay') * v('cassandraBytesPerMessage') / 1e12, unit: 'TB/day' },
    { name: 'stored (all replicas)', value: storedBytes / 1e15, unit: 'PB' },
    { name: 'coordinator writes in flight at peak (rate × latency)', value: peak * v('cassandraWritesPerMessage') * v('cassandraWriteMs') / 1000, unit: 'writes' },
  ]);
  cassandra.notes.push({ name: 'per DC', value: ceil(cassandra.units / v('cassandraDcsPerMessage')), unit: 'nodes' });

  // --- Kafka: fan-out records and push intents
  const recordsPerSec = peak * (v('kafkaRecordsPerMessage') + v('pushShareOfMessages'));
  const ingressMBps = (recordsPerSec * v('kafkaRecordBytes')) / 1e6;
  const partitions = ceil((recordsPerSec * H) / v('kafkaRecordsPerPartitionPerSec'));
  const kafka = tier('kafka', 'Kafka brokers (all regions)', 'brokers', 'max', [
    bound('bytes in × RF', ingressMBps * v('kafkaRf'), 'MB/s', v('kafkaBrokerMBps'), 'MB/s per broker', H, ['peakMessagesPerSec', 'kafkaRecordsPerMessage', 'pushShareOfMessages', 'kafkaRecordBytes', 'kafkaRf', 'kafkaBrokerMBps', 'headroom']),
    bound('CPU per record replica', recordsPerSec * v('kafkaRf') * v('kafkaCpuMsPerRecord'), 'CPU ms/s', v('kafkaCoresPerBroker') * 1000, 'CPU ms/s per broker', H, ['peakMessagesPerSec', 'kafkaRecordsPerMessage', 'pushShareOfMessages', 'kafkaRf', 'kafkaCpuMsPerRecord', 'kafkaCoresPerBroker', 'headroom']),
    bound('partition replicas', partitions * v('kafkaRf'), 'partition replicas', v('kafkaPartitionsPerBrokerMax'), 'per broker', 1, ['peakMessagesPerSec', 'kafkaRecordsPerPartitionPerSec', 'kafkaRf', 'kafkaPartitionsPerBrokerMax', 'headroom']),
  ], [
    { name: 'partitions (records/s × headroom / per-partition rate)', value: partitions, unit: 'partitions' },
    { name: 'records at peak', value: recordsPerSec, unit: 'records/s' },
    { name: 'producer requests in flight at peak (rate × latency)', value: (recordsPerSec * v('kafkaPublishMs')) / 1000, unit: 'requests' },
  ]);

  // --- Redis: routes and presence
  const steadyOps = peak * v('redisOpsPerMessage') + beatsPerSec * v('redisOpsPerHeartbeat');
  const redis = tier('redis', 'Redis shards (one core each)', 'shards', 'max', [
    bound('ops/s steady (messages + presence)', steadyOps, 'ops/s', v('redisOpsPerShardPerSec'), 'ops/s per shard', H, ['peakMessagesPerSec', 'redisOpsPerMessage', 'concurrentSockets', 'presenceHeartbeatSeconds', 'redisOpsPerHeartbeat', 'redisOpsPerShardPerSec', 'headroom']),
    bound('ops/s in a reconnect storm', steadyOps + connectsPerSecStorm * v('redisOpsPerConnect'), 'ops/s', v('redisOpsPerShardPerSec'), 'ops/s per shard', 1, ['peakMessagesPerSec', 'redisOpsPerMessage', 'concurrentSockets', 'reconnectStormSeconds', 'redisOpsPerConnect', 'redisOpsPerShardPerSec']),
  ]);

  // --- push
  const pushesPerSec = peak * v('pushShareOfMessages');
  const fcmPerSec = pushesPerSec * v('fcmShareOfPushes');
  const fcmQuotaPerSec = v('fcmQuotaPerMinute') / 60;
  const push = tier('push', 'push worker processes (one core each)', 'processes', 'max', [
    bound('pushes/s (APNs + FCM)', pushesPerSec, 'pushes/s', v('pushSendsPerSecPerProcess'), 'sends/s per process', H, ['peakMessagesPerSec', 'pushShareOfMessages', 'pushSendsPerSecPerProcess', 'headroom']),
  ], [
    { name: 'FCM sends at peak', value: fcmPerSec, unit: 'msgs/s' },
    { name: 'FCM default quota', value: fcmQuotaPerSec, unit: 'msgs/s per project' },
    { name: 'FCM peak ÷ quota (projects or a raised quota)', value: fcmPerSec / fcmQuotaPerSec, unit: '×' },
    { name: 'APNs sends at peak (no published rate quota, push.md)', value: pushesPerSec - fcmPerSec, unit: 'msgs/s' },
  ]);

  const tiers = [edge, region, cassandra, kafka, redis, push];

  // --- monthly cost
  const p = (name: string) => ({ price: v(name), priceInput: name, priceUnit: inputs[name]!.unit });
  const perM = (q: number, name: string) => (q / 1e6) * v(name);
  const wsRequests = (messagesPerMonth * (v('wsInboundFramesPerMessage') + v('deliveriesPerMessage') * v('ackFramesPerDelivery'))) / v('wsInboundBillingRatio');
  // One call gateway → ConversationDO per send, one ConversationDO → gateway per gateway of members (the live path).
  const stubCalls = (messagesPerMonth * (1 + v('gatewaysPerMessage'))) / v('doCallBatching');
  const gbSeconds = messagesPerMonth * (v('doActiveMsPerMessage') / 1000) * v('doBilledGb');
  const gatewayGbSeconds = edge.units * v('gatewayAwakeShare') * v('daysPerMonth') * 86_400 * v('doBilledGb');
  const rows = messagesPerMonth * v('doRowWritesPerMessage');
  const workerRequests = messagesPerMonth * v('workerRequestsPerMessage') + connectsPerMonth;
  const costs: CostLine[] = [
    { tier: 'edge', item: 'DO requests: inbound WebSocket frames, sends and acks (billed 20:1)', quantity: wsRequests, quantityUnit: 'requests', ...p('priceDoRequestsPerM'), monthly: perM(wsRequests, 'priceDoRequestsPerM') },
    { tier: 'edge', item: 'DO requests: stub calls (1 send + 1 per gateway of members)', quantity: stubCalls, quantityUnit: 'requests', ...p('priceDoRequestsPerM'), monthly: perM(stubCalls, 'priceDoRequestsPerM') },
    { tier: 'edge', item: 'DO requests: socket connects', quantity: connectsPerMonth, quantityUnit: 'requests', ...p('priceDoRequestsPerM'), monthly: perM(connectsPerMonth, 'priceDoRequestsPerM') },
    { tier: 'edge', item: 'DO duration: ConversationDOs (active ms per message × 128 MB)', quantity: gbSeconds, quantityUnit: 'GB-s', ...p('priceDoGbSecondsPerM'), monthly: perM(gbSeconds, 'priceDoGbSecondsPerM') },
    { tier: 'edge', item: 'DO duration: gateways awake (× 128 MB)', quantity: gatewayGbSeconds, quantityUnit: 'GB-s', ...p('priceDoGbSecondsPerM'), monthly: perM(gatewayGbSeconds, 'priceDoGbSecondsPerM') },
    { tier: 'edge', item: 'DO SQLite rows written (ConversationDO per message)', quantity: rows, quantityUnit: 'rows', ...p('priceDoRowWritesPerM'), monthly: perM(rows, 'priceDoRowWritesPerM') },
    { tier: 'edge', item: 'Worker requests (deliver + connects)', quantity: workerRequests, quantityUnit: 'requests', ...p('priceWorkerRequestsPerM'), monthly: perM(workerRequests, 'priceWorkerRequestsPerM') },
    { tier: 'region', item: 'region cores', quantity: region.units, quantityUnit: 'cores', ...p('priceCoreMonth'), monthly: region.units * v('priceCoreMonth') },
    { tier: 'cassandra', item: 'Cassandra nodes', quantity: cassandra.units, quantityUnit: 'nodes', ...p('priceCassandraNodeMonth'), monthly: cassandra.units * v('priceCassandraNodeMonth') },
    { tier: 'kafka', item: 'Kafka brokers', quantity: kafka.units, quantityUnit: 'brokers', ...p('priceKafkaBrokerMonth'), monthly: kafka.units * v('priceKafkaBrokerMonth') },
    { tier: 'redis', item: 'Redis shards', quantity: redis.units, quantityUnit: 'shards', ...p('priceRedisShardMonth'), monthly: redis.units * v('priceRedisShardMonth') },
    { tier: 'push', item: 'push worker cores (APNs and FCM sends are free)', quantity: push.units, quantityUnit: 'cores', ...p('priceCoreMonth'), monthly: push.units * v('priceCoreMonth') },
  ];
  const costByTier = { edge: 0, region: 0, cassandra: 0, kafka: 0, redis: 0, push: 0 } as Record<Tier['tier'], number>;
  for (const c of costs) costByTier[c.tier] += c.monthly;
  const totalMonthly = costs.reduce((a, c) => a + c.monthly, 0);
  const [topTier, topMonthly] = (Object.entries(costByTier) as [Tier['tier'], number][]).reduce((a, b) => (b[1] > a[1] ? b : a));
  const topItem = costs.filter((c) => c.tier === topTier).reduce((a, b) => (b.monthly > a.monthly ? b : a));
  const topTierFleet = tiers.find((t) => t.tier === topTier)!;
  const why = `${topItem.item}: ${fmt(topItem.quantity)} ${topItem.quantityUnit}/month × $${topItem.price} (${topItem.priceUnit}) = $${fmt(topItem.monthly)}/month, ${pct(topItem.monthly, totalMonthly)} of the total` + whyDetail(topItem, topTierFleet, inputs);
  return {
    peak: { messagesPerSec: peak, deliveriesPerSec, gatewayCallsPerSec, averageMessagesPerSec: v('messagesPerDay') / 86_400, messagesPerMonth },
    tiers,
    costs,
    costByTier,
    totalMonthly,
    mostExpensive: { tier: topTier, monthly: topMonthly, share: totalMonthly > 0 ? topMonthly / totalMonthly : 0, item: topItem.item, itemMonthly: topItem.monthly, why },
  };
}

function whyDetail(c: CostLine, t: Tier, inputs: Inputs): string {
  const val = (n: string) => inputs[n]!.value;
  if (c.priceInput === 'priceDoRowWritesPerM') return ` — ${val('doRowWritesPerMessage')} rows per message (${inputs.doRowWritesPerMessage!.source}) at the seed's ${fmt(val('messagesPerDay'))} messages/day; batching rows or a memory ring with Cassandra as the record removes most of it`;
  if (c.item.startsWith('DO requests: stub')) return ` — ${1 + val('gatewaysPerMessage')} billed calls per message, batched ${val('doCallBatching')}:1`;
  if (c.item.startsWith('DO duration: gateways')) return ` — ${fmt(t.units)} gateways awake ${val('gatewayAwakeShare') * 100} % of the month; the fleet is bound by ${t.binding}`;
  if (c.item.startsWith('DO duration')) return ` — ${val('doActiveMsPerMessage')} ms active per message at ${val('doBilledGb')} GB`;
  if (c.item.startsWith('Worker requests')) return ` — ${val('workerRequestsPerMessage')} Worker request per message plus connects`;
  return t.combine === 'max' ? ` — the fleet is bound by ${t.binding}` : ` — ${t.bounds.map((b) => `${b.by} ${fmt(b.units)}`).join(', ')}`;
}

/** 1234567 → "1.23M"; small numbers with up to 3 significant digits. */
export function fmt(x: number): string {
  const a = Math.abs(x);
  const sig = (y: number) => {
    const s = Math.abs(y) >= 100 ? y.toFixed(0) : Math.abs(y) >= 10 ? y.toFixed(1) : y.toFixed(2);
    return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
  };
  if (a >= 1e12) return sig(x / 1e12) + 'T';
  if (a >= 1e9) return sig(x / 1e9) + 'B';
  if (a >= 1e6) return sig(x / 1e6) + 'M';
  if (a >= 1e4) return sig(x / 1e3) + 'k';
  if (a >= 1) return Number.isInteger(x) ? String(x) : sig(x);
  if (a === 0) return '0';
  return String(Number(x.toPrecision(3)));
}

const pct = (a: number, b: number) => (b > 0 ? `${Math.round((a / b) * 100)} %` : '-');
