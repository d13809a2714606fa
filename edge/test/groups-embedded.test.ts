import { groupsSuite } from './groups.suite.ts';

groupsSuite('embedded');
