/**
 * Per-operation latency of the real engines, one operation at a time (no concurrency):
 *   - Cassandra: `CassandraStorage.appendMessages` of one message (LOCAL_QUORUM);
 *   - Kafka: `KafkaQueue.publish` of one record (idempotent producer, acks=all).
 * Prints p50/p90/p99/max and writes .bench/engines.json.
 *
 *   npx tsx region/bench/engines-latency.ts            (engines from `npm run stack:up`)
 *   BENCH_WARMUP=200 BENCH_COUNT=2000 npx tsx region/bench/engines-latency.ts
 *
 * Addresses come from TEST_CASSANDRA_CONTACT_POINTS / TEST_KAFKA_BROKERS (defaults
 * 127.0.0.1:9042 and 127.0.0.1:9092). It uses its own keyspace and topic prefix and removes them.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import { Kafka, logLevel } from 'kafkajs';
import type { Msg } from '@switchboard/protocol';
import { createLogger } from '../src/log.ts';
import { KafkaQueue } from '../src/queue/queue-kafka.ts';
import { CassandraStorage } from '../src/storage/storage-cassandra.ts';

const WARMUP = Number(process.env.BENCH_WARMUP ?? 200);
const COUNT = Number(process.env.BENCH_COUNT ?? 2_000);
const contactPoints = (process.env.TEST_CASSANDRA_CONTACT_POINTS || '127.0.0.1:9042').split(',');
const localDataCenter = process.env.TEST_CASSANDRA_LOCAL_DC || 'datacenter1';
const brokers = (process.env.TEST_KAFKA_BROKERS || '127.0.0.1:9092').split(',');
const log = createLogger({ svc: 'bench' });
const quiet: typeof log = { ...log, info: () => {}, debug: () => {}, child: () => quiet };
const id = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;

interface Summary {
  count: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { count: s.length, p50Ms: r(q(0.5)), p90Ms: r(q(0.9)), p99Ms: r(q(0.99)), maxMs: r(s[s.length - 1]!), meanMs: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

/** Runs `op(i)` WARMUP times unmeasured, then COUNT times measured, strictly one after another. */
async function measure(op: (i: number) => Promise<void>): Promise<Summary> {
  for (let i = 0; i < WARMUP; i++) await op(i);
  const samples: number[] = [];
  for (let i = WARMUP; i < WARMUP + COUNT; i++) {
    const t0 = process.hrtime.bigint();
    await op(i);
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return summarize(samples);
}

const body = 'x'.repeat(200); // a short chat message's ciphertext, roughly

async function cassandraWrites(): Promise<Summary> {
  const keyspace = `sbbench_${id}`;
  const storage = new CassandraStorage({ contactPoints, localDataCenter, keyspace, consistency: 'LOCAL_QUORUM', replication: { [localDataCenter]: 1 } }, quiet);
  try {
    await storage.init();
    const conv = `bench${id}`;
    const msg = (seq: number): Msg => ({ t: 'msg', conv, seq, cmid: `cm-${seq}`, from: 'alice', dev: 'phone', ts: Date.now(), body });
    return await measure((i) => storage.appendMessages([msg(i + 1)]));
  } finally {
    await storage.close();
    const client = new cassandra.Client({ contactPoints, localDataCenter });
    await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).finally(() => client.shutdown());
  }
}

async function kafkaPublishes(): Promise<Summary> {
  const topicPrefix = `sbbench_${id}.`;
  const queue = new KafkaQueue({ brokers, clientId: 'switchboard-bench', topicPrefix, partitions: 8, replicationFactor: 1 }, quiet);
  try {
    await queue.init(['fanout']);
    const value = { kind: 'msg', msg: { t: 'msg', conv: 'c', seq: 1, cmid: 'cm', from: 'alice', dev: 'phone', ts: Date.now(), body } };
    return await measure((i) => queue.publish('fanout', [{ key: `conv${i % 64}`, value }]));
  } finally {
    await queue.close();
    const admin = new Kafka({ clientId: 'switchboard-bench-cleanup', brokers, logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(topicPrefix));
    if (topics.length) await admin.deleteTopics({ topics });
    await admin.disconnect();
  }
}

async function main(): Promise<void> {
  const loadBefore = os.loadavg()[0]!;
  log.info('measuring', { warmup: WARMUP, count: COUNT, contactPoints, brokers });
  const cassandraAppend = await cassandraWrites();
  log.info('cassandra appendMessages(1 message)', { ...cassandraAppend });
  const kafkaPublish = await kafkaPublishes();
  log.info('kafka publish(1 record)', { ...kafkaPublish });
  const result = {
    at: new Date().toISOString(),
    warmup: WARMUP,
    // The engines share this machine's CPUs with the client (and anything else running): the load
    // average is kept with the numbers because tail latency moves with it.
    loadAvg1m: { before: Math.round(loadBefore * 100) / 100, after: Math.round(os.loadavg()[0]! * 100) / 100 },
    host: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, platform: `${os.platform()} ${os.release()}` },
    setup: 'single local node of each engine, same machine as the client, sequential operations (one in flight)',
    cassandra: { op: 'appendMessages of 1 message (200-byte body)', consistency: 'LOCAL_QUORUM', replicationFactor: 1, ...cassandraAppend },
    kafka: { op: 'publish of 1 record (keyed, JSON)', producer: 'idempotent, acks=-1, maxInFlightRequests=1', partitions: 8, replicationFactor: 1, ...kafkaPublish },
  };
  const file = path.resolve('.bench/engines.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(result, null, 2) + '\n');
  const row = (name: string, s: Summary) =>
    `${name.padEnd(30)} p50 ${s.p50Ms.toFixed(2).padStart(7)} ms   p90 ${s.p90Ms.toFixed(2).padStart(7)} ms   p99 ${s.p99Ms.toFixed(2).padStart(7)} ms   max ${s.maxMs.toFixed(2).padStart(8)} ms   (n=${s.count})`;
  process.stdout.write(`\n${row('cassandra append (1 msg)', cassandraAppend)}\n${row('kafka publish (1 record)', kafkaPublish)}\nwritten to ${file}\n`);
}

main().then(
  () => process.exit(0),
  (err) => {
    log.error('bench failed', { err: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
