/**
 * `npm run profile:edge-gc -- [--port 9229] [--seconds 20] [--every 50] [--out .bench/edge-gc.json]`:
 * watches the edge Worker's V8 heap in workerd through the inspector (the edge must run with
 * EDGE_INSPECTOR_PORT set, e.g. under `npm run bench:latency`) and prints its major collections.
 *
 * Every `--every` ms it asks for the heap's used size (Runtime.getHeapUsage). The inspector's
 * answers come from the isolate's one thread, so a slow answer is a stretch in which workerd ran
 * nothing else. A fall of the used size to under a third is taken as a major collection (a
 * minor one frees only the young generation: measured here, falls to 44-70 % of a 10-35 MB heap;
 * major ones to 11-30 %); smaller falls are counted as minor. The slowest answers are listed too. Printed with wall-clock times, so they line up with
 * `BENCH_TRACE`'s per-message timestamps. Each poll asks for two numbers, so it costs the Worker
 * far less than profile:edge's sampler.
 */
import fs from 'node:fs';
import path from 'node:path';
import { arg, portAndSeconds } from './lib/args.ts';
import { connectInspector } from './lib/inspector.ts';
import { ROOT } from './lib/processes.ts';

interface Poll {
  at: number;
  usedMb: number;
  totalMb: number;
  /** The inspector's answer time, ms. */
  rttMs: number;
}

const { port, seconds } = portAndSeconds(20);
const every = Number(arg('every', '50'));
if (!Number.isFinite(every) || every < 5 || every > 5000) throw new Error(`--every: expected 5..5000 ms, got ${every}`);
const out = path.resolve(ROOT, arg('out', '.bench/edge-gc.json'));

const { inspector, targetId } = await connectInspector(port);
process.stderr.write(`profile-edge-gc: watching ${targetId}'s heap every ${every} ms for ${seconds} s …\n`);
const polls: Poll[] = [];
let stop = false;
process.once('SIGINT', () => (stop = true));
process.once('SIGTERM', () => (stop = true));
const end = Date.now() + seconds * 1000;
while (!stop && Date.now() < end) {
  const at = Date.now();
  const t0 = performance.now();
  let r: { usedSize: number; totalSize: number };
  try {
    r = await inspector.call<{ usedSize: number; totalSize: number }>('Runtime.getHeapUsage');
  } catch (err) {
    // The edge stopped or restarted: report what was seen so far.
    process.stderr.write(`profile-edge-gc: ${err instanceof Error ? err.message : String(err)}; stopping after ${polls.length} polls\n`);
    break;
  }
  polls.push({ at, usedMb: r.usedSize / 1e6, totalMb: r.totalSize / 1e6, rttMs: performance.now() - t0 });
  await new Promise((resolve) => setTimeout(resolve, every));
}
inspector.close();
if (polls.length < 2) {
  console.error('profile-edge-gc: fewer than two answers; nothing to report');
  process.exit(1);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const majors: { at: string; beforeMb: number; afterMb: number; rttMs: number; sincePreviousS: number | null }[] = [];
let minors = 0;
let lastMajor: number | null = null;
for (let i = 1; i < polls.length; i++) {
  const [a, b] = [polls[i - 1]!, polls[i]!];
  if (b.usedMb >= a.usedMb) continue;
  if (b.usedMb >= a.usedMb / 3) {
    minors++;
    continue;
  }
  // The answer that saw the fall, or the one before it, waited out the collection.
  const rtt = Math.max(a.rttMs, b.rttMs);
  majors.push({ at: new Date(b.at).toISOString(), beforeMb: round(a.usedMb), afterMb: round(b.usedMb), rttMs: round(rtt), sincePreviousS: lastMajor === null ? null : round((b.at - lastMajor) / 1000) });
  lastMajor = b.at;
}
const rtts = polls.map((p) => p.rttMs);
const result = {
  seconds,
  everyMs: every,
  polls: polls.length,
  rttMs: { p50: round(median(rtts)), max: round(Math.max(...rtts)) },
  heapUsedMb: { min: round(Math.min(...polls.map((p) => p.usedMb))), max: round(Math.max(...polls.map((p) => p.usedMb))) },
  minorCollections: minors,
  majorCollections: majors,
  slowestAnswers: [...polls].sort((a, b) => b.rttMs - a.rttMs).slice(0, 5).map((p) => ({ at: new Date(p.at).toISOString(), rttMs: round(p.rttMs), usedMb: round(p.usedMb) })),
};
for (const m of majors) console.log(`${m.at}  major: ${m.beforeMb} → ${m.afterMb} MB used; inspector answer ${m.rttMs} ms${m.sincePreviousS === null ? '' : `; ${m.sincePreviousS} s after the previous`}`);
for (const p of result.slowestAnswers) console.log(`${p.at}  slow answer: ${p.rttMs} ms (heap used ${p.usedMb} MB)`);
console.log(
  `${polls.length} polls; answers p50 ${result.rttMs.p50} ms, max ${result.rttMs.max} ms; heap used ${result.heapUsedMb.min}-${result.heapUsedMb.max} MB; ` +
    `${majors.length} major and ${minors} minor collections`,
);
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(result, null, 2));
console.log(`written to ${path.relative(process.cwd(), out)}`);

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
