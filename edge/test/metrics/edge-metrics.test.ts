import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { metricFamilies, sampleSum } from '../../../scripts/lib/prom-text.ts';
import { AnalyticsFlusher } from '../../src/metrics/analytics.ts';
import { EDGE_METRICS } from '../../src/metrics/catalog.ts';
import { EdgeMetrics, labels } from '../../src/metrics/edge-metrics.ts';
import { renderPrometheus } from '../../src/metrics/prometheus.ts';

describe('edge metrics', () => {
  it('renders every catalog family in Prometheus text, named switchboard_edge_*, histograms cumulative', () => {
    const m = new EdgeMetrics();
    m.inc('switchboard_edge_frames_in_total', 'send', 3);
    m.inc('switchboard_edge_errors_total', labels('rate_limited', 'frame'));
    m.set('switchboard_edge_connections', labels('gw:local:1'), 7);
    for (const s of [0.0005, 0.003, 0.003, 0.2, 42]) m.observe('switchboard_edge_region_call_duration_seconds', labels('/internal/gateway', 'ok'), s);
    const text = renderPrometheus(m.snapshot());
    const families = metricFamilies(text);
    assert.deepEqual([...families.keys()], Object.keys(EDGE_METRICS));
    for (const [name, type] of families) {
      assert.match(name, /^switchboard_edge_[a-z0-9_]+$/);
      assert.equal(type, EDGE_METRICS[name as keyof typeof EDGE_METRICS].type);
      if (name.endsWith('_seconds')) assert.equal(type, 'histogram', name);
    }
    assert.equal(sampleSum(text, 'switchboard_edge_frames_in_total', { type: 'send' }), 3);
    assert.equal(sampleSum(text, 'switchboard_edge_errors_total', { code: 'rate_limited', source: 'frame' }), 1);
    assert.equal(sampleSum(text, 'switchboard_edge_connections', { gateway: 'gw:local:1' }), 7);
    const h = { path: '/internal/gateway', result: 'ok' };
    const bucket = (le: string) => sampleSum(text, 'switchboard_edge_region_call_duration_seconds_bucket', { ...h, le });
    assert.equal(bucket('0.001'), 1);
    assert.equal(bucket('0.005'), 3, 'cumulative');
    assert.equal(bucket('0.25'), 4);
    assert.equal(bucket('10'), 4);
    assert.equal(bucket('+Inf'), 5);
    assert.equal(sampleSum(text, 'switchboard_edge_region_call_duration_seconds_count', h), 5);
    assert.ok(Math.abs(sampleSum(text, 'switchboard_edge_region_call_duration_seconds_sum', h) - 42.2065) < 1e-9);
  });

  it('merges snapshots (what a scrape gathers from gateways) and hands over counts once with take (what a conversation rides)', () => {
    const conversation = new EdgeMetrics();
    conversation.inc('switchboard_edge_messages_sequenced_total', '', 2);
    conversation.observe('switchboard_edge_live_push_age_seconds', '', 0.004);
    const gateway = new EdgeMetrics();
    gateway.inc('switchboard_edge_messages_sequenced_total', '', 1);
    gateway.merge(conversation.take());
    assert.ok(conversation.empty, 'taken counts start again from nothing');
    gateway.merge(conversation.take());
    const text = renderPrometheus(gateway.snapshot());
    assert.equal(sampleSum(text, 'switchboard_edge_messages_sequenced_total'), 3);
    assert.equal(sampleSum(text, 'switchboard_edge_live_push_age_seconds_count'), 1);
    // An RPC copy of a snapshot is plain data and merges the same.
    const scrape = new EdgeMetrics();
    scrape.merge(JSON.parse(JSON.stringify(gateway.snapshot())));
    scrape.merge(JSON.parse(JSON.stringify(gateway.snapshot())));
    assert.equal(sampleSum(renderPrometheus(scrape.snapshot()), 'switchboard_edge_messages_sequenced_total'), 6);
    // Unknown names (a newer gateway than this Worker) are ignored, not rendered.
    scrape.merge({ c: [{ n: 'switchboard_edge_nope_total' as never, k: '', v: 1 }], g: [], h: [] });
    assert.doesNotMatch(renderPrometheus(scrape.snapshot()), /nope/);
  });

  it('writes Analytics Engine data points for what moved since the last flush', () => {
    const points: { indexes?: string[]; blobs?: string[]; doubles?: number[] }[] = [];
    const m = new EdgeMetrics();
    const flusher = new AnalyticsFlusher({ writeDataPoint: (p) => void points.push(p) }, 'gw:weur:3');
    m.inc('switchboard_edge_frames_in_total', 'send', 5);
    m.observe('switchboard_edge_region_call_duration_seconds', labels('/internal/events', 'ok'), 0.02);
    assert.equal(flusher.flush(m), 2);
    assert.deepEqual(points[0], { indexes: ['switchboard_edge_frames_in_total'], blobs: ['switchboard_edge_frames_in_total', 'gw:weur:3', 'send'], doubles: [5] });
    const hist = points[1]!;
    assert.deepEqual(hist.blobs, ['switchboard_edge_region_call_duration_seconds', 'gw:weur:3', '/internal/events', 'ok']);
    assert.equal(hist.doubles![0], 1, 'count');
    assert.equal(hist.doubles!.length, 2 + EDGE_METRICS.switchboard_edge_region_call_duration_seconds.buckets.length + 1);
    points.length = 0;
    assert.equal(flusher.flush(m), 0, 'nothing moved: nothing written');
    m.inc('switchboard_edge_frames_in_total', 'send', 2);
    flusher.flush(m);
    assert.deepEqual(points.map((p) => p.doubles), [[2]], 'the increase only');
  });
});
