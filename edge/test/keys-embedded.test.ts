import { keysSuite } from './keys.suite.ts';

keysSuite('embedded');
