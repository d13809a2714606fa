import { metricsSuite } from './metrics.suite.ts';

metricsSuite('embedded');
