export * from './client.ts';
export * from './http.ts';
