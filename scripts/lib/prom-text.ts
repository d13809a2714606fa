/**
 * Reading Prometheus text (format 0.0.4) in tests and checks: the families it declares and the
 * value of one sample. (scripts/bench/prom.ts reads histograms for the benches' figures.)
 */

/** Each family's name → its `# TYPE` (counter, gauge, histogram, summary, untyped). */
export function metricFamilies(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** The labels of a sample line (`name{a="x",b="y"} 1` → {a: 'x', b: 'y'}). */
function labelsOf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) out[m[1]!] = m[2]!;
  return out;
}

/**
 * The sum of the samples named exactly `name` whose labels include every one of `labels` (a
 * histogram's `_count`, a counter summed over its other labels); 0 when none matches.
 */
export function sampleSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const m = /^([\w:]+)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = labelsOf(m[2] ?? '');
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** Whether any sample of `name` matches `labels`. */
export function hasSample(text: string, name: string, labels: Record<string, string> = {}): boolean {
  return text.split('\n').some((line) => {
    const m = /^([\w:]+)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) return false;
    const have = labelsOf(m[2] ?? '');
    return Object.entries(labels).every(([k, v]) => have[k] === v);
  });
}
