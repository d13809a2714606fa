import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * BENCH_EDGE_STATE: where a benchmark's edge (workerd) keeps its Durable Objects' SQLite (each
 * benchmark says which is its default). `disk`: a temp dir on disk, where every commit is a disk
 * sync on workerd's only thread. `tmpfs`: /dev/shm, where a commit survives a workerd crash but
 * not a machine crash, as on Cloudflare, where a commit is made durable by replication rather
 * than by a local sync.
 */
export type EdgeState = 'disk' | 'tmpfs';

export function edgeState(dflt: EdgeState = 'disk'): EdgeState {
  const v = process.env.BENCH_EDGE_STATE?.trim() || dflt;
  if (v !== 'disk' && v !== 'tmpfs') {
    console.error(`BENCH_EDGE_STATE: expected disk or tmpfs, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  if (v === 'tmpfs' && !fs.existsSync('/dev/shm')) {
    console.error('BENCH_EDGE_STATE=tmpfs: this machine has no /dev/shm');
    process.exit(2);
  }
  return v;
}

/** A fresh folder for the edge's state, on the chosen medium; the caller removes it. */
export function edgeStateDir(state: EdgeState): string {
  return fs.mkdtempSync(path.join(state === 'tmpfs' ? '/dev/shm' : os.tmpdir(), 'sb-bench-edge-'));
}
