/**
 * `npm run profile:edge -- [--port 9229] [--seconds 8] [--out .bench/edge.cpuprofile]`: samples the
 * edge Worker's JavaScript in workerd for a while through the V8 inspector (the edge must run with
 * EDGE_INSPECTOR_PORT set, e.g. under `npm run bench:latency`), writes a .cpuprofile that Chrome
 * DevTools opens, and prints the functions with the most self time and the share of samples that
 * were idle, JavaScript, or the runtime's own work (garbage collection, "(program)").
 */
import fs from 'node:fs';
import path from 'node:path';
import { arg, portAndSeconds } from './lib/args.ts';
import { connectInspector } from './lib/inspector.ts';
import { ROOT } from './lib/processes.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface Profile {
  nodes: ProfileNode[];
  samples?: number[];
  startTime: number;
  endTime: number;
}

const { port, seconds } = portAndSeconds(8);
const out = path.resolve(ROOT, arg('out', '.bench/edge.cpuprofile'));

const { inspector, targetId } = await connectInspector(port);
const call = <T>(method: string, params: object = {}) => inspector.call<T>(method, params);
await call('Profiler.enable');
await call('Profiler.setSamplingInterval', { interval: 1000 });
await call('Profiler.start');
process.stderr.write(`profile-edge: sampling ${targetId} for ${seconds} s …\n`);
await new Promise((r) => setTimeout(r, seconds * 1000));
const { profile } = await call<{ profile: Profile }>('Profiler.stop');
inspector.close();
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, JSON.stringify(profile));

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const counts = new Map<number, number>();
for (const s of profile.samples ?? []) counts.set(s, (counts.get(s) ?? 0) + 1);
const total = profile.samples?.length ?? 0;
const self = new Map<string, number>();
for (const [id, n] of counts) {
  const f = byId.get(id)!.callFrame;
  const key = `${f.functionName || '(anonymous)'} ${f.url ? `${path.basename(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
  self.set(key, (self.get(key) ?? 0) + n);
}
const pct = (n: number) => `${((n / Math.max(1, total)) * 100).toFixed(1)}%`;
const idle = self.get('(idle)') ?? 0;
console.log(`${total} samples over ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s; idle ${pct(idle)}, busy ${pct(total - idle)}`);
for (const [k, n] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 40)) console.log(`${pct(n).padStart(7)}  ${k}`);
console.log(`written to ${path.relative(process.cwd(), out)}`);
