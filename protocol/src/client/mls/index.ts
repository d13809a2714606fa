export * from './suite.ts';
export * from './identity.ts';
export * from './key-package.ts';
export * from './group.ts';
export * from './delivery-service.ts';
export * from './inspect.ts';
export * from './store.ts';
export * from './device.ts';
