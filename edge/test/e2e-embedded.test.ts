import { e2eSuite } from './e2e.suite.ts';

e2eSuite('embedded');
