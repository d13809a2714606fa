import { it } from 'node:test';
import { e2eSuite } from './e2e.suite.ts';
import { realEngineEnv } from './system.ts';

if (realEngineEnv('probe')) e2eSuite('real');
else if (process.env.CI === 'true') {
  it('end to end (real engines)', () => {
    throw new Error('CI requires the real engines: TEST_CASSANDRA_CONTACT_POINTS, TEST_KAFKA_BROKERS and TEST_REDIS_URL are not all set');
  });
} else it('end to end (real engines)', { skip: 'real engines not running: npm run stack:up, then npm test' }, () => {});
