/**
 * `npm run bench:do-rpc`: the floor under the edge's fan-out on this machine. Every delivery is
 * one call into the recipient's SessionDO, so one workerd process can deliver at most as many
 * messages per second as it can make Durable Object calls. This measures that, in workerd through
 * Miniflare (as scripts/edge-runner.ts runs the edge), with a small Worker
 * (scripts/bench/do-rpc-worker.js) that calls DO_RPC_TARGETS distinct objects per round, as
 * /internal/deliver does for a group's members:
 *   - plain: the same calls to plain objects in the isolate (the baseline: no Durable Object);
 *   - noop: a Durable Object call that does nothing;
 *   - deliver: a call carrying one message, serialized by the callee (SessionDO.deliver's shape);
 *   - deliver, stub per call: the same with the stub looked up by name for every call;
 *   - text: the same message serialized once by the caller, passed as text;
 *   - deliver ×2: two workerd processes at once, each with its own objects (does it scale with cores?).
 * For each: calls/s, workerd CPU per call, and the cores 10,000 deliveries/s would take at that
 * cost (bench:fanout's target). Writes .bench/do-rpc.json.
 *
 * | variable | default | |
 * |---|---|---|
 * | DO_RPC_TARGETS | 1000 | objects called per round |
 * | DO_RPC_SECONDS | 4 | seconds per measurement (after a 1 s warm-up) |
 * | BENCH_OUT | .bench/do-rpc.json | |
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Miniflare } from 'miniflare';
import { ROOT } from '../lib/processes.ts';
import { cpuPercent, cpuSnapshot, type Target } from './cpu.ts';
import { num } from './env-number.ts';

const TARGETS = Math.round(num('DO_RPC_TARGETS', 1000, 1, 20_000));
const SECONDS = num('DO_RPC_SECONDS', 4, 1, 120);
const OUT = path.resolve(ROOT, process.env.BENCH_OUT || '.bench/do-rpc.json');
/** bench:fanout's target rate of deliveries. */
const TARGET_DELIVERIES = 10_000;

const progress = (msg: string) => process.stderr.write(`bench:do-rpc: ${msg}\n`);
const pgrp = Number(fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')[2]);
const workerd = new Map<string, Target>([['workerd', { pgrp, comm: 'workerd' }]]);

const dirs: string[] = [];
const instances: Miniflare[] = [];
let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    await Promise.allSettled(instances.map((mf) => mf.dispose()));
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
  process.exit(code);
}
process.on('SIGINT', () => void stop(130));
process.on('SIGTERM', () => void stop(143));

async function start(): Promise<Miniflare> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-do-rpc-'));
  dirs.push(dir);
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(ROOT, 'scripts/bench/do-rpc-worker.js'),
    compatibilityDate: '2026-04-01',
    durableObjects: { TARGETS: { className: 'Target', useSQLite: true } },
    durableObjectsPersist: dir,
  });
  instances.push(mf);
  await mf.ready;
  return mf;
}

interface Row {
  mode: string;
  processes: number;
  calls: number;
  seconds: number;
  callsPerSec: number;
  workerdCpuPercent: number | null;
  cpuUsPerCall: number | null;
  coresFor10kDeliveries: number | null;
}

async function measure(label: string, mode: string, mfs: Miniflare[]): Promise<Row> {
  await Promise.all(mfs.map((mf) => mf.dispatchFetch(`http://bench/?mode=${mode}&n=${TARGETS}&ms=1000`)));
  const c0 = cpuSnapshot(workerd);
  const t0 = performance.now();
  const answers = await Promise.all(mfs.map(async (mf) => (await (await mf.dispatchFetch(`http://bench/?mode=${mode}&n=${TARGETS}&ms=${SECONDS * 1000}`)).json()) as { calls: number }));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuPercent(c0, cpuSnapshot(workerd)).workerd ?? null;
  const calls = answers.reduce((a, r) => a + r.calls, 0);
  const cpuUsPerCall = cpu === null ? null : Math.round(((cpu / 100) * seconds * 1e6) / calls);
  const row: Row = {
    mode: label,
    processes: mfs.length,
    calls,
    seconds: Math.round(seconds * 100) / 100,
    callsPerSec: Math.round(calls / seconds),
    workerdCpuPercent: cpu,
    cpuUsPerCall,
    coresFor10kDeliveries: cpuUsPerCall === null ? null : Math.round(((TARGET_DELIVERIES * cpuUsPerCall) / 1e6) * 100) / 100,
  };
  progress(`${label}: ${row.callsPerSec} calls/s, workerd ${cpu ?? '-'}% of one core, ${cpuUsPerCall ?? '-'} µs CPU per call`);
  return row;
}

async function main(): Promise<void> {
  progress(`load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} on ${os.cpus().length} CPUs; ${TARGETS} objects per round, ${SECONDS} s each`);
  const a = await start();
  const rows = [
    await measure('plain (no DO)', 'plain', [a]),
    await measure('noop', 'noop', [a]),
    await measure('deliver', 'deliver', [a]),
    await measure('deliver, stub per call', 'fresh', [a]),
    await measure('deliver as text', 'text', [a]),
  ];
  const b = await start();
  rows.push(await measure('deliver ×2 processes', 'deliver', [a, b]));
  const lines = [
    '',
    `${'mode'.padEnd(24)}${'procs'.padStart(6)}${'calls/s'.padStart(10)}${'workerd %'.padStart(11)}${'µs/call'.padStart(9)}${'cores for 10k/s'.padStart(17)}`,
    ...rows.map((r) => `${r.mode.padEnd(24)}${String(r.processes).padStart(6)}${String(r.callsPerSec).padStart(10)}${String(r.workerdCpuPercent ?? '-').padStart(11)}${String(r.cpuUsPerCall ?? '-').padStart(9)}${String(r.coresFor10kDeliveries ?? '-').padStart(17)}`),
  ];
  const one = rows.find((r) => r.mode === 'deliver')!;
  const plain = rows[0]!;
  lines.push(`a Durable Object call costs ${(plain.callsPerSec / one.callsPerSec).toFixed(0)}× a plain call; at ${one.callsPerSec} calls/s one workerd process delivers at most that many messages/s to distinct users`);
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify({ at: new Date().toISOString(), host: { cpus: os.cpus().length, node: process.version, loadAvg: os.loadavg() }, targets: TARGETS, seconds: SECONDS, rows }, null, 2) + '\n');
  lines.push(`written to ${path.relative(process.cwd(), OUT)}`);
  process.stdout.write(lines.join('\n') + '\n');
}

main().then(
  () => stop(0),
  (err) => {
    progress(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return stop(1);
  },
);
