/**
 * What `npm run config:check` learns while the region reads its configuration: every variable
 * looked up, in the order read, and the default its reader falls back to. loadConfig's helpers
 * call `noteDefault`, which does nothing unless the environment came from `traceEnv`, so start-up
 * and the check run exactly the same parsing.
 */
type EnvMap = Record<string, string | undefined>;

export interface TracedSetting {
  name: string;
  /** What an unset variable means, as text; null: none (required, or unset turns it off). */
  default: string | null;
  /** Its value must never be printed. */
  secret: boolean;
}

export interface EnvTrace {
  /** A copy of the environment that records each variable read. */
  env: EnvMap;
  /** By variable name, in the order first read. */
  settings: Map<string, TracedSetting>;
}

const traces = new WeakMap<object, Map<string, TracedSetting>>();

export function traceEnv(source: EnvMap): EnvTrace {
  const settings = new Map<string, TracedSetting>();
  const env = new Proxy<EnvMap>(
    { ...source },
    {
      get(target, key) {
        if (typeof key === 'string' && !settings.has(key)) settings.set(key, { name: key, default: null, secret: false });
        return Reflect.get(target, key);
      },
    },
  );
  traces.set(env, settings);
  return { env, settings };
}

/** Called by the readers of settings: `dflt` is what an unset `name` gives. */
export function noteDefault(env: EnvMap, name: string, dflt: unknown, opts: { secret?: boolean } = {}): void {
  const settings = traces.get(env);
  if (!settings) return;
  const prev = settings.get(name);
  settings.set(name, { name, default: dflt === undefined || dflt === null ? null : String(dflt), secret: opts.secret ?? prev?.secret ?? false });
}
