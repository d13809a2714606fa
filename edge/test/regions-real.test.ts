import { it } from 'node:test';
import { regionsSuite } from './regions.suite.ts';
import { twoRegionEngines } from '../../scripts/lib/regions.ts';

if (twoRegionEngines()) regionsSuite('real');
else if (process.env.CI === 'true') {
  it('two regions (real engines)', () => {
    throw new Error('CI requires two regions of real engines: TEST_* and TEST_REGION2_* (npm run stack:up -- --regions 2) are not all set');
  });
} else it('two regions (real engines)', { skip: 'two regions of real engines not running: npm run stack:up -- --regions 2, then npm test' }, () => {});
