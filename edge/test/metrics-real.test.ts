import { it } from 'node:test';
import { metricsSuite } from './metrics.suite.ts';
import { realEngineEnv } from './system.ts';

if (realEngineEnv('probe')) metricsSuite('real');
else if (process.env.CI === 'true') {
  it('metrics (real engines)', () => {
    throw new Error('CI requires the real engines: TEST_CASSANDRA_CONTACT_POINTS, TEST_KAFKA_BROKERS and TEST_REDIS_URL are not all set');
  });
} else it('metrics (real engines)', { skip: 'real engines not running: npm run stack:up, then npm test' }, () => {});
