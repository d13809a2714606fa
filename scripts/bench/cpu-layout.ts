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
 * `split-client-region`: as `split`, but the bench client (16-19 % of a core at 500 msg/s) on the
 * region's half at a higher priority (nice -10), so that it does not compete with workerd. The
 * region is off the measured path (the edge pushes live; its copy lags by design); the priority
 * keeps the region's bursts from delaying the client's clock readings. Back to back with warm
 * engines, neither layout's p99 stood out from the run-to-run noise.
 *
 * `shared`: every process may run on every core, as the OS schedules them.
 *
 * Pinning uses `taskset` (util-linux) on every thread of each process; threads started later
 * inherit it. Engines the benchmark did not start are put back as they were when it ends. Redis,
 * a service of the machine's own using about 1 % of a core here, is left where it is.
 */
const LAYOUTS = ['split', 'split-client-region', 'shared'] as const;
export type CpuLayout = (typeof LAYOUTS)[number];
/** The bench client's niceness in `split-client-region` (negative: before the region side's processes). */
const CLIENT_NICE = -10;
export type Side = 'edge' | 'region';

export function cpuLayout(): CpuLayout {
  const v = process.env.BENCH_CPU_LAYOUT?.trim() || 'split';
  if (!(LAYOUTS as readonly string[]).includes(v)) {
    console.error(`BENCH_CPU_LAYOUT: expected ${LAYOUTS.join(', ')}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  const layout = v as CpuLayout;
  if (layout !== 'shared' && os.cpus().length < 2) {
    console.error(`BENCH_CPU_LAYOUT=${layout} needs at least 2 CPUs (this machine has ${os.cpus().length}); use BENCH_CPU_LAYOUT=shared`);
    process.exit(2);
  }
  if (layout !== 'shared' && spawnSync('taskset', ['--version']).error) {
    console.error(`BENCH_CPU_LAYOUT=${layout} needs \`taskset\` (Debian: util-linux); use BENCH_CPU_LAYOUT=shared`);
    process.exit(2);
  }
  return layout;
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
    if (this.layout === 'split') return `split: edge, bench client and echo server on CPU ${this.cpus.edge}; region, Cassandra and Kafka on CPU ${this.cpus.region}`;
    if (this.layout === 'split-client-region') return `split-client-region: edge and echo server on CPU ${this.cpus.edge}; region, Cassandra, Kafka and the bench client (nice ${CLIENT_NICE}) on CPU ${this.cpus.region}`;
    return 'shared: every process on every CPU';
  }

  /** The side the bench client (the stand-in for the users' devices) goes on. */
  get clientSide(): Side {
    return this.layout === 'split-client-region' ? 'region' : 'edge';
  }

  /**
   * Pins the bench client (`pids`: its own processes) to its side and, in `split-client-region`, raises its
   * priority. A refused renice (not root) is reported and the run goes on at normal priority.
   */
  pinClient(pids: number[], warn: (line: string) => void): void {
    this.pin(this.clientSide, pids);
    if (this.layout !== 'split-client-region') return;
    for (const pid of pids) {
      const r = spawnSync('renice', ['-n', String(CLIENT_NICE), '-p', String(pid)], { encoding: 'utf8' });
      if (r.status !== 0) warn(`renice ${CLIENT_NICE} of the bench client refused (${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}); it runs at normal priority`);
    }
  }

  /**
   * Pins every thread of `pids` to `side`'s cores (a no-op when shared). `restore`: put back as
   * found when `restore()` runs (for processes that outlive the benchmark).
   */
  pin(side: Side, pids: number[], opts: { restore?: boolean } = {}): void {
    if (this.layout === 'shared') return;
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
