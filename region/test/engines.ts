import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';

/**
 * Which real engines the contract suites run against. A real engine runs when its variable is
 * set; in CI (CI=true) a missing variable FAILS the suite, because the real engines are what CI
 * proves; on a developer machine it is skipped with the reason printed.
 */
export const ENGINES = {
  cassandra: { variable: 'TEST_CASSANDRA_CONTACT_POINTS', example: '127.0.0.1:9042' },
  kafka: { variable: 'TEST_KAFKA_BROKERS', example: '127.0.0.1:9092' },
  redis: { variable: 'TEST_REDIS_URL', example: 'redis://127.0.0.1:6379' },
  redisCluster: { variable: 'TEST_REDIS_CLUSTER_NODES', example: '127.0.0.1:7379,127.0.0.1:7380,127.0.0.1:7381' },
} as const;

export type EngineName = keyof typeof ENGINES;

/** The engine's address from the environment, or undefined when not configured. */
export function engineAddress(engine: EngineName, env: Record<string, string | undefined> = process.env): string | undefined {
  return env[ENGINES[engine].variable]?.trim() || undefined;
}

/**
 * Registers the real-engine suite `<suite> contract: <engine>`: `register(address)` when the
 * engine is configured, else a failing test in CI, else a visibly skipped suite.
 */
export function engineSuite(suite: string, engine: EngineName, register: (address: string) => void): void {
  const { variable, example } = ENGINES[engine];
  const address = engineAddress(engine);
  if (address) return register(address);
  const title = `${suite} contract: ${engine}`;
  if (process.env.CI === 'true') {
    describe(title, () => {
      it(`${engine} is configured`, () => {
        throw new Error(`CI requires ${engine}: ${variable} is not set`);
      });
    });
    return;
  }
  describe(title, () => {
    it(`${engine} is configured`, { skip: `start engines with npm run stack:up and set ${variable}=${example}` }, () => {});
  });
}

/** A short lowercase id, unique per run, safe in keyspace, topic, key and conversation names. */
export function runId(): string {
  return `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}
