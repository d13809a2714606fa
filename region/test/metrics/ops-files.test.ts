import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { parser } from '@prometheus-io/lezer-promql';
import { parse as parseYaml } from 'yaml';
import { EDGE_METRICS } from '../../../edge/src/metrics/catalog.ts';
import { ROOT } from '../../../scripts/lib/processes.ts';
import { RegionMetrics } from '../../src/metrics/region-metrics.ts';

/**
 * The shipped dashboard (ops/grafana/switchboard.json), alert rules (ops/prometheus/alerts.yml)
 * and README's metrics table name only metrics that exist: registered in the region's registry
 * or in the edge's list (edge/src/metrics/catalog.ts), with the labels they match on.
 */

interface Known {
  type: string;
  labels: Set<string>;
}

async function knownMetrics(): Promise<Map<string, Known>> {
  const known = new Map<string, Known>();
  const region = new RegionMetrics({ process: true });
  for (const m of region.registry.getMetricsAsArray() as unknown as { name: string; type: string; labelNames: string[] }[]) known.set(m.name, { type: m.type, labels: new Set(m.labelNames) });
  for (const [name, def] of Object.entries(EDGE_METRICS)) known.set(name, { type: def.type, labels: new Set(def.labels) });
  return known;
}

/** The metric a series name belongs to (a histogram's _bucket, _sum and _count are its own). */
function resolve(known: Map<string, Known>, series: string): { name: string; m: Known; bucket: boolean } | null {
  const m = known.get(series);
  if (m) return { name: series, m, bucket: false };
  const h = /^(.*)_(bucket|sum|count)$/.exec(series);
  const base = h && known.get(h[1]!);
  return base?.type === 'histogram' ? { name: h![1]!, m: base, bucket: h![2] === 'bucket' } : null;
}

/** Every vector selector of a PromQL expression, with its label matchers' names; throws on a syntax error. */
function selectors(expr: string): { series: string; labels: string[] }[] {
  const tree = parser.parse(expr);
  const out: { series: string; labels: string[] }[] = [];
  const errors: number[] = [];
  tree.iterate({
    enter(n) {
      if (n.type.isError) errors.push(n.from);
      if (n.name !== 'VectorSelector') return;
      const id = n.node.getChild('Identifier');
      const labels: string[] = [];
      n.node.getChild('LabelMatchers')?.cursor().iterate((l) => {
        if (l.name === 'LabelName') labels.push(expr.slice(l.from, l.to));
      });
      if (id) out.push({ series: expr.slice(id.from, id.to), labels });
    },
  });
  if (errors.length) throw new Error(`PromQL syntax error at ${errors[0]} in: ${expr}`);
  return out;
}

/** Grafana's variables, as Prometheus would see them once Grafana filled them in. */
const grafanaFilled = (expr: string) => expr.replace(/\$__rate_interval|\$__interval|\$__range/g, '5m').replace(/\$\{?\w+\}?/g, 'x');

function checkExpr(known: Map<string, Known>, where: string, expr: string): string[] {
  const problems: string[] = [];
  let found;
  try {
    found = selectors(expr);
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
  if (found.length === 0) problems.push(`${where}: names no metric: ${expr}`);
  for (const s of found) {
    const r = resolve(known, s.series);
    if (!r) {
      problems.push(`${where}: ${s.series} is neither in the region's registry nor in the edge's list`);
      continue;
    }
    for (const l of s.labels) if (!r.m.labels.has(l) && !(r.bucket && l === 'le') && !['instance', 'job'].includes(l)) problems.push(`${where}: ${s.series} has no label ${l}`);
  }
  if (/histogram_quantile/.test(expr) && !found.some((s) => s.series.endsWith('_bucket'))) problems.push(`${where}: histogram_quantile over no _bucket series`);
  return problems;
}

const read = (file: string) => fs.readFileSync(path.join(ROOT, file), 'utf8');

describe('dashboard, alert rules and README name existing metrics', () => {
  it('the checker itself refuses unknown metrics, unknown labels and bad PromQL', async () => {
    const known = await knownMetrics();
    assert.deepEqual(checkExpr(known, 't', 'sum(rate(switchboard_edge_frames_in_total{type="send"}[5m]))'), []);
    assert.equal(checkExpr(known, 't', 'rate(switchboard_edge_nope_total[5m])').length, 1);
    assert.equal(checkExpr(known, 't', 'rate(switchboard_edge_frames_in_total{kind="x"}[5m])').length, 1);
    assert.equal(checkExpr(known, 't', 'sum(rate(switchboard_edge_frames_in_total[5m])').length, 1);
    assert.equal(checkExpr(known, 't', 'switchboard_queue_lag_records_bucket').length, 1, 'a gauge has no buckets');
  });

  it('ops/prometheus/alerts.yml: valid rule groups, every expression parses and names existing metrics', async () => {
    const known = await knownMetrics();
    const doc = parseYaml(read('ops/prometheus/alerts.yml')) as { groups: { name: string; rules: { alert: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> }[] }[] };
    const problems: string[] = [];
    const alerts = new Set<string>();
    for (const g of doc.groups)
      for (const r of g.rules) {
        assert.ok(r.alert && typeof r.expr === 'string', `${g.name}: a rule without alert or expr`);
        assert.ok(!alerts.has(r.alert), `${r.alert} twice`);
        alerts.add(r.alert);
        assert.ok(r.labels?.severity, `${r.alert}: severity`);
        assert.ok(r.annotations?.summary, `${r.alert}: summary`);
        problems.push(...checkExpr(known, r.alert, r.expr));
      }
    assert.deepEqual(problems, []);
    // The list: queue lag, dead letters, outbox backlog, error rates, push failures, p99 delivery.
    const all = doc.groups.flatMap((g) => g.rules.map((r) => r.expr)).join('\n');
    for (const m of ['switchboard_queue_lag_records', 'switchboard_queue_dead_letters_total', 'switchboard_edge_outbox_age_seconds_bucket', 'switchboard_region_http_request_duration_seconds_count', 'switchboard_edge_errors_total', 'switchboard_push_sends_total', 'switchboard_edge_live_push_age_seconds_bucket', 'switchboard_region_message_age_seconds_bucket'])
      assert.ok(all.includes(m), `an alert on ${m}`);
  });

  it('ops/grafana/switchboard.json: every panel query parses and names existing metrics; panels do not overlap', async () => {
    const known = await knownMetrics();
    const dash = JSON.parse(read('ops/grafana/switchboard.json')) as { uid: string; panels: { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: { expr: string }[] }[] };
    assert.equal(dash.uid, 'switchboard');
    const problems: string[] = [];
    const cells = new Set<string>();
    const used = new Set<string>();
    for (const p of dash.panels) {
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++)
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          assert.ok(!cells.has(`${x},${y}`), `panel "${p.title}" overlaps another at ${x},${y}`);
          cells.add(`${x},${y}`);
        }
      if (p.type === 'row') continue;
      assert.ok(p.targets?.length, `panel "${p.title}" has no query`);
      for (const t of p.targets ?? []) {
        problems.push(...checkExpr(known, `panel "${p.title}"`, grafanaFilled(t.expr)));
        for (const s of selectors(grafanaFilled(t.expr))) used.add(resolve(known, s.series)?.name ?? s.series);
      }
    }
    assert.deepEqual(problems, []);
    const ours = [...known.keys()].filter((n) => !/^switchboard_region_(process|nodejs)_/.test(n));
    assert.deepEqual(ours.filter((n) => !used.has(n)), [], 'every switchboard metric has a panel');
  });

  it("README's metrics table: every row exists with its type and labels, and every metric has a row", async () => {
    const known = await knownMetrics();
    const readme = read('README.md');
    const start = readme.indexOf('### Metrics, dashboard and alerts');
    assert.ok(start >= 0, 'the Operators subsection');
    const rows = [...readme.slice(start).matchAll(/^\| `(switchboard_\w+)` \| (\w+) \| ([^|]*) \| [^|\n]+ \|$/gm)];
    const documented = new Set<string>();
    for (const [, name, type, labels] of rows) {
      const m = known.get(name!);
      assert.ok(m, `README documents ${name}, which does not exist`);
      assert.equal(type, m.type, `${name}: type`);
      const listed = labels!.trim() === '—' ? [] : labels!.split(',').map((l) => l.trim());
      assert.deepEqual(listed.sort(), [...m.labels].sort(), `${name}: labels`);
      documented.add(name!);
    }
    const ours = [...known.keys()].filter((n) => !/^switchboard_region_(process|nodejs)_/.test(n));
    assert.deepEqual(ours.filter((n) => !documented.has(n)), [], 'undocumented metrics');
  });
});
