import { spawnSync } from 'node:child_process';
import os from 'node:os';

/**
 * BENCH_CPU_LAYOUT: how a benchmark places the system on this machine's cores.
 *
 * `split` (default): the edge side (workerd and its runner, the bench client standing in for the
 * users' devices, the echo server it is compared with) on the first half of the cores, the
 * region side (the region's Node and the Cassandra and Kafka JVMs) on the other half. In
 * production they never share a machine: the edge runs in Cloudflare's network, the region in a
 * data centre. Sharing cores here lets the region's bursts (JIT compiles, garbage collection,
 * batch writes) take the CPU that workerd's single thread needs, which shows as edge latency
 * that production would not have.
 *
 * `shared`: every process may run on every core, as the OS schedules them.
 *
 * Pinning uses `taskset` (util-linux) on every thread of each process; threads started later
 * inherit it. Engines the benchmark did not start are put back as they were when it ends. Redis,
 * a service of the machine's own using about 1 % of a core here, is left where it is.
 */
export type CpuLayout = 'split' | 'shared';
export type Side = 'edge' | 'region';

export function cpuLayout(): CpuLayout {
  const v = process.env.BENCH_CPU_LAYOUT?.trim() || 'split';
  if (v !== 'split' && v !== 'shared') {
    console.error(`BENCH_CPU_LAYOUT: expected split or shared, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  if (v === 'split' && os.cpus().length < 2) {
    console.error(`BENCH_CPU_LAYOUT=split needs at least 2 CPUs (this machine has ${os.cpus().length}); use BENCH_CPU_LAYOUT=shared`);
    process.exit(2);
  }
  if (v === 'split' && spawnSync('taskset', ['--version']).error) {
    console.error('BENCH_CPU_LAYOUT=split needs `taskset` (Debian: util-linux); use BENCH_CPU_LAYOUT=shared');
    process.exit(2);
  }
  return v;
}

/** The cores of each side, as taskset CPU lists: the lower half for the edge, the upper for the region. */
export function sideCpus(): Record<Side, string> {
  const n = os.cpus().length;
  const half = Math.floor(n / 2);
  const range = (a: number, b: number) => (a === b ? String(a) : `${a}-${b}`);
  return { edge: range(0, half - 1), region: range(half, n - 1) };
}

/** Pins processes to their side's cores and can put back the ones it did not start. */
export class Pinning {
  /** pid → the affinity mask it had (hex, as taskset prints it), for processes to restore. */
  private readonly restoreTo = new Map<number, string>();
  readonly cpus = sideCpus();

  constructor(readonly layout: CpuLayout) {}

  /** One line for the output and the record: what ran where. */
  describe(): string {
    return this.layout === 'split'
      ? `split: edge, bench client and echo server on CPU ${this.cpus.edge}; region, Cassandra and Kafka on CPU ${this.cpus.region}`
      : 'shared: every process on every CPU';
  }

  /**
   * Pins every thread of `pids` to `side`'s cores (a no-op when shared). `restore`: put back as
   * found when `restore()` runs (for processes that outlive the benchmark).
   */
  pin(side: Side, pids: number[], opts: { restore?: boolean } = {}): void {
    if (this.layout !== 'split') return;
    for (const pid of pids) {
      if (opts.restore && !this.restoreTo.has(pid)) {
        const mask = /affinity mask:\s*([0-9a-f]+)/i.exec(spawnSync('taskset', ['-p', String(pid)], { encoding: 'utf8' }).stdout ?? '')?.[1];
        if (mask) this.restoreTo.set(pid, mask);
      }
      const r = spawnSync('taskset', ['-a', '-p', '-c', this.cpus[side], String(pid)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`taskset -a -p -c ${this.cpus[side]} ${pid}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
    }
  }

  /** Puts back the processes pinned with `restore`; safe to call twice and from an exit handler. */
  restore(): void {
    for (const [pid, mask] of this.restoreTo) spawnSync('taskset', ['-a', '-p', mask, String(pid)]);
    this.restoreTo.clear();
  }
}
