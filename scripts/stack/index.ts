// Programmatic API of the local stack (Cassandra, Kafka, Redis), e.g. for the test runner:
//
//   import { ensureStack } from './stack/index.ts';
//   const { cassandra, kafka, redis } = await ensureStack({ log: (l) => console.error(l) });
//
// `ensureStack` is `npm run stack:up` as a function: it starts what is not running (detached; the
// engines keep running after the caller exits) and resolves once every engine answers a real client
// request. Calls are cheap when the stack is already up (a CQL query, a metadata call, a PING).
import { cassandraConnection } from './cassandra.ts';
import { loadConfig } from './config.ts';
import { kafkaConnection } from './kafka.ts';
import { createLogger, stderrSink } from './log.ts';
import { redisConnection } from './redis.ts';
import { stackStatus as status, up, type EngineStatus } from './stack.ts';

export interface StackInfo {
  cassandra: { contactPoints: string[]; localDataCenter: string };
  kafka: { brokers: string[] };
  redis: { url: string };
}

export type { EngineStatus } from './stack.ts';

let inFlight: Promise<StackInfo> | undefined;

/**
 * Bring the stack up if needed and return connection info. `log` receives JSON lines
 * (default: stderr). Concurrent calls in one process share one attempt; concurrent calls from
 * several processes are serialised by a lock file in the stack dir.
 */
export function ensureStack(opts: { log?: (line: string) => void; signal?: AbortSignal } = {}): Promise<StackInfo> {
  if (inFlight) return inFlight;
  const cfg = loadConfig();
  inFlight = (async () => {
    await up({ log: createLogger(opts.log ?? stderrSink), cfg, signal: opts.signal });
    return connectionInfo();
  })().finally(() => {
    inFlight = undefined;
  });
  return inFlight;
}

/** Connection info for the configured stack (doesn't check that it is running). */
export function connectionInfo(): StackInfo {
  const cfg = loadConfig();
  return { cassandra: cassandraConnection(cfg), kafka: kafkaConnection(cfg), redis: redisConnection(cfg) };
}

/** State of each engine: running/starting/stopped/external/conflict, pid, address, ready. */
export async function stackStatus(): Promise<{ ok: boolean; engines: EngineStatus[] }> {
  const engines = await status(loadConfig());
  return { ok: engines.every((e) => e.ready), engines };
}
