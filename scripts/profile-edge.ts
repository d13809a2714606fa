/**
 * `npm run profile:edge -- [--port 9229] [--seconds 8] [--out .bench/edge.cpuprofile]`: samples the
 * edge Worker's JavaScript in workerd for a while through the V8 inspector (the edge must run with
 * EDGE_INSPECTOR_PORT set, e.g. under `npm run bench:latency`), writes a .cpuprofile that Chrome
 * DevTools opens, and prints the functions with the most self time and the share of samples that
 * were idle, JavaScript, or the runtime's own work (garbage collection, "(program)").
 */
import fs from 'node:fs';
import path from 'node:path';
import WebSocket from 'ws';
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

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const port = Number(arg('port', process.env.EDGE_INSPECTOR_PORT ?? '9229'));
const seconds = Number(arg('seconds', '8'));
const out = path.resolve(ROOT, arg('out', '.bench/edge.cpuprofile'));
if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`--port: expected 1..65535, got ${port}`);
if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) throw new Error(`--seconds: expected 1..600, got ${seconds}`);

const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as { id: string; title?: string; webSocketDebuggerUrl?: string }[];
const target = targets.find((t) => t.id.includes('switchboard-edge')) ?? targets[0];
if (!target) throw new Error(`no inspector target on port ${port}`);
const ws = new WebSocket(target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${target.id}`);
await new Promise<void>((resolve, reject) => (ws.once('open', () => resolve()), ws.once('error', reject)));
let nextId = 1;
const pending = new Map<number, (r: any) => void>();
ws.on('message', (data) => {
  const m = JSON.parse(String(data)) as { id?: number; result?: unknown };
  if (m.id !== undefined) pending.get(m.id)?.(m.result), pending.delete(m.id);
});
const call = <T>(method: string, params: object = {}) =>
  new Promise<T>((resolve) => {
    const id = nextId++;
    pending.set(id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });

await call('Profiler.enable');
await call('Profiler.setSamplingInterval', { interval: 1000 });
await call('Profiler.start');
process.stderr.write(`profile-edge: sampling ${target.id} for ${seconds} s …\n`);
await new Promise((r) => setTimeout(r, seconds * 1000));
const { profile } = await call<{ profile: Profile }>('Profiler.stop');
ws.close();
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
