import { EDGE_METRICS, type EdgeMetricName, type MetricDef } from './catalog.ts';
import { splitLabels, type EdgeSnapshot } from './edge-metrics.ts';

const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

function labelText(name: EdgeMetricName, key: string, extra?: [string, string]): string {
  const values = splitLabels(key);
  const pairs: string[] = EDGE_METRICS[name].labels.map((l, i) => `${l}="${escape(values[i] ?? '')}"`);
  if (extra) pairs.push(`${extra[0]}="${extra[1]}"`);
  return pairs.length ? `{${pairs.join(',')}}` : '';
}

/**
 * Prometheus text format 0.0.4 of a (merged) snapshot: every family of the catalog, in catalog
 * order, with HELP and TYPE even before it has a sample; histograms with cumulative buckets.
 */
export function renderPrometheus(s: EdgeSnapshot): string {
  const out: string[] = [];
  const byName = new Map<EdgeMetricName, string[]>();
  const add = (name: EdgeMetricName, line: string) => {
    const list = byName.get(name);
    if (list) list.push(line);
    else byName.set(name, [line]);
  };
  for (const { n: name, k: key, v } of [...s.c, ...s.g]) if (name in EDGE_METRICS) add(name, `${name}${labelText(name, key)} ${v}`);
  for (const { n: name, k: key, count, sum, b: counts } of s.h) {
    const bounds = (EDGE_METRICS[name] as MetricDef | undefined)?.buckets;
    if (!bounds) continue;
    let cum = 0;
    bounds.forEach((le, i) => {
      cum += counts[i] ?? 0;
      add(name, `${name}_bucket${labelText(name, key, ['le', String(le)])} ${cum}`);
    });
    add(name, `${name}_bucket${labelText(name, key, ['le', '+Inf'])} ${count}`);
    add(name, `${name}_sum${labelText(name, key)} ${sum}`);
    add(name, `${name}_count${labelText(name, key)} ${count}`);
  }
  for (const [name, def] of Object.entries(EDGE_METRICS) as [EdgeMetricName, MetricDef][]) {
    out.push(`# HELP ${name} ${def.help}`, `# TYPE ${name} ${def.type}`, ...(byName.get(name) ?? []));
  }
  return out.join('\n') + '\n';
}
