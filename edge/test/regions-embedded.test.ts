import { regionsSuite } from './regions.suite.ts';

// Two region processes on embedded engines: each its own SQLite, queue and routes (what one region
// stores the other does not see), so this covers homes, routes in both regions and the outage.
regionsSuite('embedded');
