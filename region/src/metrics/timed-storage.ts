import type { Histogram } from 'prom-client';

/**
 * `storage` with every method that returns a promise timed into `hist`
 * (`switchboard_storage_operation_duration_seconds{backend, op, result}`); everything else passes
 * through untouched. One wrapper for every implementation, so a method added later is timed too.
 */
export function timedStorage<S extends { readonly name: string }>(storage: S, hist: Histogram<'backend' | 'op' | 'result'>): S {
  const backend = storage.name;
  const wrapped = new Map<PropertyKey, unknown>();
  return new Proxy(storage, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string' || prop === 'constructor') return value;
      let fn = wrapped.get(prop);
      if (!fn) {
        fn = function (this: unknown, ...args: unknown[]) {
          const t0 = performance.now();
          const out: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (!(out instanceof Promise)) return out;
          const done = (result: 'ok' | 'error') => hist.observe({ backend, op: prop, result }, (performance.now() - t0) / 1000);
          return out.then(
            (v: unknown) => (done('ok'), v),
            (err: unknown) => {
              done('error');
              throw err;
            },
          );
        };
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
}
