import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signRequest, type ConvEvent } from '@switchboard/protocol';
import { hasSample, metricFamilies, sampleSum } from '../../../scripts/lib/prom-text.ts';
import { createApp } from '../../src/app.ts';
import { createLogger } from '../../src/log.ts';
import { serveMetrics } from '../../src/metrics/metrics-server.ts';
import { RegionMetrics } from '../../src/metrics/region-metrics.ts';
import { timedStorage } from '../../src/metrics/timed-storage.ts';
import { Contacts } from '../../src/presence/contacts.ts';
import { MemoryPresence } from '../../src/presence/presence-memory.ts';
import { PresenceService } from '../../src/presence/presence-service.ts';
import { MemoryQueue } from '../../src/queue/queue-memory.ts';
import { CONSUMER_GROUPS, TOPICS, dlqOf } from '../../src/queue/queue.ts';
import { MemoryRoutes } from '../../src/routes/routes-memory.ts';
import { SqliteStorage } from '../../src/storage/storage-sqlite.ts';

const SECRET = 'region-metrics-test-secret-0123456789';
const CONV = 'dMetricsTest';
const log = createLogger({ test: 'region-metrics' });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A region app wired as main.ts wires it: one registry, timed storage, the queue observed, presence counted. */
async function setup() {
  const metrics = new RegionMetrics({ process: true });
  const storage = timedStorage(new SqliteStorage(':memory:'), metrics.storage);
  await storage.init();
  const queue = new MemoryQueue(log, metrics.queue);
  metrics.queue.readLagFrom(queue, CONSUMER_GROUPS, 0);
  const presence = new PresenceService({ presence: new MemoryPresence(), contacts: new Contacts(storage), log, ttlMs: 60_000, push: async () => {}, metrics: metrics.presence });
  const app = createApp({ storage, queue, routes: new MemoryRoutes(), log, internalSecret: SECRET, routeTtlMs: 60_000, metrics, presence });
  const post = async (path: string, payload: unknown, signed = true) => {
    const body = JSON.stringify(payload);
    const headers = { 'content-type': 'application/json', ...(signed ? await signRequest(SECRET, 'POST', path, body) : {}) };
    return app.request(path, { method: 'POST', headers, body });
  };
  const scrape = async () => {
    const res = await app.request('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    return res.text();
  };
  return { metrics, queue, post, scrape };
}

const msg = (seq: number): ConvEvent => ({ kind: 'msg', msg: { t: 'msg', conv: CONV, seq, cmid: `cm-${seq}`, from: 'ann', dev: 'phone', ts: Date.now() - 50, body: `hello ${seq}` } });
const created: ConvEvent = { kind: 'created', conv: CONV, title: null, members: ['ann', 'bob'], creator: 'ann', ts: Date.now() };

describe('region /metrics (prom-client)', () => {
  it('names every family switchboard_<subsystem>_<name>, with histograms and no summaries, and the process metrics', async () => {
    const { scrape } = await setup();
    const families = metricFamilies(await scrape());
    assert.ok(families.size > 40, `${families.size} families`);
    for (const [name, type] of families) {
      assert.match(name, /^switchboard_(region|storage|queue|fanout|presence|push)_[a-z0-9_]+$/, name);
      assert.notEqual(type, 'summary', `${name} is a summary`);
      // prom-client's process metrics are readings (CPU time, start time, event loop lag percentiles), not durations of events.
      const processMetric = /^switchboard_region_(process|nodejs)_/.test(name);
      if (/_seconds$/.test(name) && !processMetric) assert.equal(type, 'histogram', `${name}: durations are histograms`);
    }
    for (const name of ['switchboard_region_process_cpu_seconds_total', 'switchboard_region_process_resident_memory_bytes', 'switchboard_region_nodejs_eventloop_lag_seconds', 'switchboard_region_nodejs_heap_size_used_bytes'])
      assert.ok(families.has(name), `default process metric ${name}`);
  });

  it('counts HTTP requests by route pattern and status, the message path, storage calls and queue lag as a send goes through', async () => {
    const { queue, post, scrape } = await setup();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let handled = 0;
    await queue.subscribe(TOPICS.fanout, 'fanout', async () => {
      await gate;
      handled++;
    });
    const before = await scrape();
    assert.equal(sampleSum(before, 'switchboard_region_http_request_duration_seconds_count', { route: '/internal/events' }), 0);
    assert.equal((await post('/internal/events', { conv: CONV, events: [created, msg(1), msg(2), msg(3)] })).status, 200);
    assert.equal((await post('/internal/events', { conv: CONV, events: [msg(4)] }, false)).status, 401, 'unsigned');
    assert.equal((await post('/internal/nothing-here', {})).status, 404);

    const during = await scrape();
    const http = (labels: Record<string, string>) => sampleSum(during, 'switchboard_region_http_request_duration_seconds_count', labels);
    assert.equal(http({ method: 'POST', route: '/internal/events', status: '200' }), 1);
    assert.equal(http({ method: 'POST', route: '/internal/events', status: '401' }), 1);
    assert.equal(http({ route: 'unmatched', status: '404' }), 1);
    assert.ok(hasSample(during, 'switchboard_region_http_request_duration_seconds_bucket', { route: '/internal/events', le: '+Inf' }));
    assert.equal(sampleSum(during, 'switchboard_region_events_messages_total'), 3);
    assert.equal(sampleSum(during, 'switchboard_region_events_requests_total'), 1);
    for (const point of ['region_received', 'stored', 'published']) {
      assert.equal(sampleSum(during, 'switchboard_region_message_age_seconds_count', { point }), 3, point);
      assert.ok(sampleSum(during, 'switchboard_region_message_age_seconds_sum', { point }) >= 3 * 0.05, `${point}: ages are seconds since msg.ts`);
    }
    assert.equal(sampleSum(during, 'switchboard_region_operation_duration_seconds_count', { op: 'store' }), 1);
    assert.equal(sampleSum(during, 'switchboard_storage_operation_duration_seconds_count', { backend: 'sqlite', op: 'appendMessages', result: 'ok' }), 1);
    assert.equal(sampleSum(during, 'switchboard_storage_operation_duration_seconds_count', { backend: 'sqlite', op: 'saveConversation', result: 'ok' }), 1);
    assert.equal(sampleSum(during, 'switchboard_queue_lag_records', { topic: 'fanout', group: 'fanout', partition: '0' }), 3, 'three records wait for the fan-out');

    release();
    while (handled < 3) await sleep(5);
    assert.equal(sampleSum(await scrape(), 'switchboard_queue_lag_records', { topic: 'fanout', group: 'fanout' }), 0);
  });

  it('counts storage errors, dead letters and presence', async () => {
    const { metrics, queue, post, scrape } = await setup();
    await queue.subscribe('poison', 'g', async () => {
      throw new Error('always');
    }, { maxAttempts: 1 });
    await queue.subscribe(dlqOf('poison'), 'g-dlq', async () => {});
    await queue.publish('poison', [{ key: 'k', value: 1 }, { key: 'k', value: 2 }]);
    while ((await metrics.queue.deadLetters.get()).values.length === 0) await sleep(5);
    await sleep(20);
    const ops = [{ op: 'connect', user: 'ann', device: 'phone' }, { op: 'beat', user: 'ann', device: 'phone', age: 0 }];
    assert.equal((await post('/internal/gateway', { routes: [], presence: ops, cursors: [] })).status, 200);
    assert.equal((await post('/internal/read', { conv: 'nope', user: 'ann', after: 0, limit: 10 })).status, 404);
    const text = await scrape();
    assert.equal(sampleSum(text, 'switchboard_queue_dead_letters_total', { topic: 'poison' }), 2);
    assert.equal(sampleSum(text, 'switchboard_presence_heartbeats_total'), 2);
    assert.equal(sampleSum(text, 'switchboard_presence_changes_total', { status: 'online' }), 1);
    assert.equal(sampleSum(text, 'switchboard_storage_operation_duration_seconds_count', { op: 'getConversation', result: 'ok' }), 1);
    assert.equal(sampleSum(text, 'switchboard_region_http_request_duration_seconds_count', { route: '/internal/read', status: '404' }), 1);
    assert.ok(hasSample(text, 'switchboard_push_skipped_total', { reason: 'online' }), 'push metrics share the registry');

    const failing = timedStorage({ name: 'flaky', ping: async () => Promise.reject(new Error('down')), label: () => 'sync' }, metrics.storage);
    await assert.rejects(failing.ping(), /down/, 'a failure passes through');
    assert.equal(failing.label(), 'sync', 'a synchronous method passes through');
    const after = await scrape();
    assert.equal(sampleSum(after, 'switchboard_storage_operation_duration_seconds_count', { backend: 'flaky', op: 'ping', result: 'error' }), 1);
    assert.equal(sampleSum(after, 'switchboard_storage_operation_duration_seconds_count', { backend: 'flaky', op: 'label' }), 0, 'only promises are timed');
  });

  it('METRICS_PORT: a worker without the API serves /metrics and /healthz alone', async () => {
    const metrics = new RegionMetrics();
    metrics.inc('fanout_records', 2);
    const server = await serveMetrics(metrics, '127.0.0.1', 0);
    try {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      assert.equal(sampleSum(text, 'switchboard_fanout_records_total'), 2);
      assert.deepEqual(await (await fetch(`${server.url}/healthz`)).json(), { ok: true }, 'the container healthcheck of a worker');
      assert.equal((await fetch(`${server.url}/internal/events`, { method: 'POST' })).status, 404, 'nothing else');
    } finally {
      await server.close();
    }
  });
});
