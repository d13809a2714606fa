/**
 * CPU used by each part of the system during a phase, from /proc (Linux; elsewhere every figure
 * is null). On a shared 2-core machine this says whether a latency tail is our own CPU
 * saturation or someone else's load: `machine` is all CPUs busy, `others` what none of ours used.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';

let ticksPerSecond = 100;
try {
  ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {}

interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  comm: string;
  /** utime + stime, seconds. */
  cpu: number;
}

function readProcs(): ProcStat[] {
  const out: ProcStat[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const text = fs.readFileSync(`/proc/${e}/stat`, 'utf8');
      const close = text.lastIndexOf(')');
      const comm = text.slice(text.indexOf('(') + 1, close);
      const f = text.slice(close + 2).split(' '); // f[0] = state (field 3)
      out.push({ pid: Number(e), ppid: Number(f[1]), pgrp: Number(f[2]), comm, cpu: (Number(f[11]) + Number(f[12])) / ticksPerSecond });
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Busy and total CPU seconds of the whole machine, all cores. */
function machine(): { busy: number; total: number } | null {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = v[3]! + v[4]!;
    return { busy: (total - idle) / ticksPerSecond, total: total / ticksPerSecond };
  } catch {
    return null;
  }
}

/** What to account: a process group (a service and all its children, or only those named `comm`), a pid, a pid and every process under it, or a command name. */
export type Target = { pgrp: number; comm?: string } | { pid: number } | { tree: number } | { comm: string } | { self: true };

/** The processes a target names now (`self`: this one). */
export function pidsOf(t: Target): number[] {
  return 'self' in t ? [process.pid] : select(readProcs(), t).map((p) => p.pid);
}

/** The processes of `procs` that `t` names; a tree is `t.tree` and every process under it (a `tsx` wrapper and the Node it runs). */
function select(procs: ProcStat[], t: Exclude<Target, { self: true }>): ProcStat[] {
  if ('tree' in t) {
    const tree = new Set([t.tree]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const p of procs) if (!tree.has(p.pid) && tree.has(p.ppid)) (tree.add(p.pid), (grew = true));
    }
    return procs.filter((p) => tree.has(p.pid));
  }
  return procs.filter((p) => ('pgrp' in t ? p.pgrp === t.pgrp && (t.comm === undefined || p.comm === t.comm) : 'pid' in t ? p.pid === t.pid : p.comm === t.comm));
}

export interface CpuSnapshot {
  at: number;
  byName: Map<string, number | null>;
  machine: { busy: number; total: number } | null;
}

export function cpuSnapshot(targets: Map<string, Target>): CpuSnapshot {
  const procs = readProcs();
  const byName = new Map<string, number | null>();
  for (const [name, t] of targets) {
    if ('self' in t) {
      const u = process.cpuUsage();
      byName.set(name, (u.user + u.system) / 1e6);
      continue;
    }
    const hits = select(procs, t);
    byName.set(name, hits.length ? hits.reduce((a, p) => a + p.cpu, 0) : null);
  }
  return { at: performance.now(), byName, machine: machine() };
}

/** Percent of one core used by each target between two snapshots (200 % = both cores of a 2-core machine). */
export function cpuPercent(a: CpuSnapshot, b: CpuSnapshot): Record<string, number | null> {
  const secs = (b.at - a.at) / 1000;
  const pct = (x: number) => Math.round((x / secs) * 1000) / 10;
  const out: Record<string, number | null> = {};
  let ours = 0;
  for (const [name, after] of b.byName) {
    const before = a.byName.get(name);
    if (after === null || before === null || before === undefined) out[name] = null;
    else {
      out[name] = pct(Math.max(0, after - before));
      ours += Math.max(0, after - before);
    }
  }
  if (a.machine && b.machine) {
    const busy = b.machine.busy - a.machine.busy;
    out.machine = pct(busy);
    out.others = pct(Math.max(0, busy - ours));
    out.capacity = os.cpus().length * 100;
  }
  return out;
}
