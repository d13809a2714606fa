import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { ROOT } from '../../scripts/lib/processes.ts';

/**
 * A region worker process for tests (region/src/main.ts with REGION_ROLE=`role`, LOG_LEVEL debug,
 * in a process group of its own so a test can kill -9 it). `ready` resolves at the first log line
 * containing `readyLine` (within 90 s) and rejects if the process exits first; every line goes to
 * `onLine` (and to stderr with E2E_VERBOSE).
 */
export function spawnWorker(o: { name: string; role: string; vars: Record<string, string>; readyLine: string; onLine?: (line: string) => void }): { child: ChildProcess; ready: Promise<void> } {
  const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), [path.join(ROOT, 'region/src/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, ...o.vars, REGION_ROLE: o.role, LOG_LEVEL: 'debug' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${o.name} was not ready within 90 s`)), 90_000);
    for (const s of [child.stdout!, child.stderr!]) {
      readline.createInterface({ input: s }).on('line', (line) => {
        if (process.env.E2E_VERBOSE) process.stderr.write(`[${o.name}] ${line}\n`);
        if (line.includes(o.readyLine)) clearTimeout(timer), resolve();
        o.onLine?.(line);
      });
    }
    child.once('exit', () => reject(new Error(`${o.name} exited`)));
  });
  ready.catch(() => {});
  return { child, ready };
}

/** Signals a worker's whole process group (tsx and the node it runs). */
export function killWorker(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {}
}
