/**
 * Measured inputs from the project's own benches: each reader takes a parsed .bench/*.json record
 * (as scripts/bench/*.ts and region/bench/engines-latency.ts write it) and returns the figures it
 * yields, or nothing when the record lacks them. `readBenchFiles` is the only I/O here.
 */
import fs from 'node:fs';
import path from 'node:path';
import { setInput, type Inputs } from './inputs.ts';

export interface Measured {
  input: string;
  value: number;
  /** ".bench/fanout.json switchboard[rate=30]…" */
  from: string;
}

type J = any; // eslint-disable-line @typescript-eslint/no-explicit-any
const num = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** bench:fanout → edge deliveries per workerd core, region CPU µs per delivery (highest rate phase with the figures). */
export function fromFanout(r: J): Measured[] {
  const phases = (Array.isArray(r?.switchboard) ? r.switchboard : []).filter((p: J) => num(p?.deliveriesPerSec) && p.deliveriesPerSec > 0 && p.cpuPercent);
  const out: Measured[] = [];
  const best = [...phases].sort((a: J, b: J) => b.rate - a.rate);
  const edge = best.find((p: J) => num(p.cpuPercent['edge workerd']) && p.cpuPercent['edge workerd'] > 0);
  if (edge) out.push({ input: 'edgeDeliveriesPerCore', value: Math.round(edge.deliveriesPerSec / (edge.cpuPercent['edge workerd'] / 100)), from: `.bench/fanout.json switchboard[rate=${edge.rate}]: ${edge.deliveriesPerSec} deliveries/s at ${edge.cpuPercent['edge workerd']} % of a core (edge workerd)` });
  const reg = best.find((p: J) => num(p.cpuPercent.region) && p.cpuPercent.region > 0);
  if (reg) out.push({ input: 'regionCpuUsPerDelivery', value: round(((reg.cpuPercent.region / 100) * 1e6) / reg.deliveriesPerSec), from: `.bench/fanout.json switchboard[rate=${reg.rate}]: region ${reg.cpuPercent.region} % of a core / ${reg.deliveriesPerSec} deliveries/s (message costs included: an upper bound)` });
  return out;
}

/** bench:latency → CPU ms per message of the region, Cassandra and Kafka (each from the highest rate phase that has it). */
export function fromLatency(r: J): Measured[] {
  const results: J[] = (Array.isArray(r?.results) ? r.results : []).filter((x: J) => num(x?.rate) !== null);
  const byRate = [...results].sort((a, b) => b.rate - a.rate);
  const keys: [string, string][] = [['region', 'regionCpuMsPerMessage'], ['cassandra', 'cassandraCpuMsPerWrite'], ['kafka', 'kafkaCpuMsPerRecord']];
  return keys.flatMap(([proc, input]) => {
    const best = byRate.find((x) => num(x.cpuMsPerMessage?.[proc]) !== null && x.cpuMsPerMessage[proc] > 0);
    return best ? [{ input, value: best.cpuMsPerMessage[proc], from: `.bench/latency.json results[rate=${best.rate}].cpuMsPerMessage.${proc}` }] : [];
  });
}

/** bench:connections → KB per idle socket and connects/s of the edge. */
export function fromConnections(r: J): Measured[] {
  const edge = (Array.isArray(r?.results) ? r.results : []).find((x: J) => x?.target === 'edge' && !x.died);
  const out: Measured[] = [];
  if (num(edge?.perSocketKb) && edge.perSocketKb > 0) out.push({ input: 'edgeKbPerSocket', value: edge.perSocketKb, from: '.bench/connections.json results[target=edge].perSocketKb' });
  if (num(edge?.connect?.perSec) && edge.connect.perSec > 0) out.push({ input: 'edgeConnectsPerSecPerGateway', value: edge.connect.perSec, from: '.bench/connections.json results[target=edge].connect.perSec (one workerd)' });
  return out;
}

/** bench:presence → heartbeats/s one region process absorbs (the best batch size). */
export function fromPresence(r: J): Measured[] {
  const rows = (Array.isArray(r?.steadyState) ? r.steadyState : []).filter((x: J) => num(x?.beatsPerSecond) && x.beatsPerSecond > 0);
  const best = [...rows].sort((a: J, b: J) => b.beatsPerSecond - a.beatsPerSecond)[0];
  return best ? [{ input: 'presenceBeatsPerSecPerProcess', value: best.beatsPerSecond, from: `.bench/presence.json steadyState[batch=${best.batch}].beatsPerSecond` }] : [];
}

/** bench:push → sends/s of one process: the slower provider's best concurrency level. */
export function fromPush(r: J): Measured[] {
  const providers = r?.sections?.providers;
  if (!providers || typeof providers !== 'object') return [];
  const bests = Object.entries(providers as Record<string, J[]>).flatMap(([name, levels]) => {
    const rates = (Array.isArray(levels) ? levels : []).map((l) => num(l?.perSecond)).filter((x): x is number => x !== null && x > 0);
    return rates.length ? [{ name, best: Math.max(...rates) }] : [];
  });
  if (!bests.length) return [];
  const slow = bests.reduce((a, b) => (b.best < a.best ? b : a));
  return [{ input: 'pushSendsPerSecPerProcess', value: slow.best, from: `.bench/push.json sections.providers.${slow.name} best perSecond (slower of ${bests.map((b) => b.name).join(', ')})` }];
}

/** bench:engines → Cassandra append and Kafka publish latency (p50). */
export function fromEngines(r: J): Measured[] {
  const out: Measured[] = [];
  if (num(r?.cassandra?.p50Ms) !== null) out.push({ input: 'cassandraWriteMs', value: r.cassandra.p50Ms, from: '.bench/engines.json cassandra.p50Ms (appendMessages, single node)' });
  if (num(r?.kafka?.p50Ms) !== null) out.push({ input: 'kafkaPublishMs', value: r.kafka.p50Ms, from: '.bench/engines.json kafka.p50Ms (publish, single broker)' });
  return out;
}

export const BENCH_FILES: { file: string; command: string; read: (r: J) => Measured[] }[] = [
  { file: 'fanout.json', command: 'npm run bench:fanout', read: fromFanout },
  { file: 'latency.json', command: 'npm run bench:latency', read: fromLatency },
  { file: 'connections.json', command: 'npm run bench:connections', read: fromConnections },
  { file: 'presence.json', command: 'npm run bench:presence', read: fromPresence },
  { file: 'push.json', command: 'npm run bench:push', read: fromPush },
  { file: 'engines.json', command: 'npm run bench:engines', read: fromEngines },
];

export interface BenchReport {
  file: string;
  command: string;
  status: 'read' | 'missing' | 'unreadable' | 'no figures';
  detail?: string;
  measured: Measured[];
}

/** Reads each .bench file in `dir`, applies what it measured to `inputs`, and says what it found. */
export function applyBenchFiles(inputs: Inputs, dir: string): BenchReport[] {
  return BENCH_FILES.map(({ file, command, read }) => {
    const full = path.join(dir, file);
    if (!fs.existsSync(full)) return { file, command, status: 'missing', measured: [] };
    let measured: Measured[];
    try {
      measured = read(JSON.parse(fs.readFileSync(full, 'utf8')));
    } catch (err) {
      return { file, command, status: 'unreadable', detail: err instanceof Error ? err.message : String(err), measured: [] };
    }
    const used: Measured[] = [];
    for (const m of measured) {
      try {
        setInput(inputs, m.input, m.value, 'measured', m.from);
        used.push(m);
      } catch {
        // A figure out of its input's range (e.g. 0) is not used: the default stays.
      }
    }
    return { file, command, status: used.length ? 'read' : 'no figures', measured: used };
  });
}
