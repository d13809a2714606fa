import { mlsDevicesSuite } from './mls-devices.suite.ts';

mlsDevicesSuite('embedded');
