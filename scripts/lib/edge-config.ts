/**
 * The edge's settings for one wrangler environment, validated in Node by the edge's own
 * `config()` (edge/src/config.ts) as the Worker does on its first request: the environment's
 * `vars` from wrangler.toml plus its secrets. Secrets live in Cloudflare (`wrangler secret put`);
 * one set in this process's environment is checked, one that is not is reported as not checked
 * (a stand-in lets the other settings be validated).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { unstable_readConfig } from 'wrangler';
import { shown, type ConfigReport, type SettingRow } from '../../region/src/config-report.ts';
import { ROOT } from './processes.ts';
import { LIMIT_NAMES, LIMIT_TABLE, formatRate } from '../../edge/src/limits/limits.ts';
import type { Rate } from '../../edge/src/limits/token-buckets.ts';

type Vars = Record<string, string | undefined>;
/** edge/src/config.ts as seen from Node (its own types need the Workers runtime's). */
interface EdgeConfigModule {
  config(env: Vars): Record<string, unknown>;
}

/** The edge reads these from `wrangler secret`, never from wrangler.toml. */
export const EDGE_SECRETS = ['AUTH_SECRET', 'INTERNAL_SECRET'] as const;

async function edgeConfigModule(): Promise<EdgeConfigModule> {
  // A computed specifier: the root typecheck must not follow it into the Workers-typed sources.
  const file = pathToFileURL(path.join(ROOT, 'edge/src/config.ts')).href;
  return (await import(file)) as EdgeConfigModule;
}

/** The environment's vars as wrangler resolves them (null: the top level, the local setup). */
export function wranglerVars(env: string | null, configPath = path.join(ROOT, 'wrangler.toml')): Vars {
  const cfg = unstable_readConfig({ config: configPath, ...(env ? { env } : {}) }, { hideWarnings: true });
  return Object.fromEntries(Object.entries(cfg.vars ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]));
}

/** AUTH_SECRET → authSecret: each setting's field in EdgeConfig. */
export const fieldOf = (name: string) => name.toLowerCase().replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** A setting's value in the edge's config: its field, or for a LIMIT_* variable its rate in `limits` (`30/10s`). */
function settingOf(cfg: Record<string, unknown>, name: string): unknown {
  const limit = LIMIT_NAMES.find((l) => LIMIT_TABLE[l].env === name);
  if (limit) return formatRate((cfg.limits as Record<string, Rate>)[limit]!);
  // The regions (edge/src/regions.ts) as their pairs again.
  const regions = cfg.regions as { urls: Map<string, string>; nearest: Map<string, string> };
  const pairs = (m: Map<string, string>) => [...m].map(([k, v]) => `${k}=${v}`).join(',');
  if (name === 'REGIONS') return pairs(regions.urls);
  if (name === 'PLACEMENT_REGIONS') return pairs(regions.nearest);
  return cfg[fieldOf(name)];
}

const isConfigError = (err: unknown): err is Error => err instanceof Error && err.name === 'ConfigError';
const text = (v: unknown) => (typeof v === 'string' ? (v === '' ? '(empty)' : v) : String(v));

export async function edgeReport(env: string | null, processEnv: Vars = process.env, configPath?: string): Promise<ConfigReport> {
  const { config } = await edgeConfigModule();
  const label = env ? `wrangler.toml [env.${env}]` : 'wrangler.toml';
  const vars = wranglerVars(env, configPath);
  const notChecked = EDGE_SECRETS.filter((n) => !processEnv[n]);
  const input: Vars = { ...vars };
  for (const n of EDGE_SECRETS) input[n] = processEnv[n] || 'x'.repeat(64);
  const subject = `edge${env ? ` (${env})` : ''}`;
  const warnings = notChecked.map((n) => `${n}: not in this environment, not checked (wrangler secret put${env ? ` --env ${env}` : ''} ${n})`);
  const read: string[] = [];
  const traced = new Proxy(input, { get: (t, k) => (typeof k === 'string' && !read.includes(k) && read.push(k), Reflect.get(t, k)) });
  let cfg: Record<string, unknown>;
  try {
    cfg = config(traced);
  } catch (err) {
    if (!isConfigError(err)) throw err;
    const rows = read.map((name): SettingRow => ({ name, value: vars[name] ?? 'unset', source: name in vars ? label : 'default', default: '?' }));
    return { subject, ok: false, rows, errors: [{ type: err.name, message: err.message }], warnings };
  }
  // As Centrifugo warns on unknown keys: a var the edge never reads is a typo or a leftover.
  for (const name of Object.keys(vars)) if (!read.includes(name)) warnings.push(`${name}: set in ${label} but the edge does not read it`);
  const rows = read.map((name): SettingRow => {
    const secret = (EDGE_SECRETS as readonly string[]).includes(name);
    let dflt: string;
    try {
      dflt = text(settingOf(config({ ...input, [name]: undefined }), name));
    } catch (err) {
      if (!isConfigError(err)) throw err;
      dflt = 'required';
    }
    if (secret) return { name, value: notChecked.includes(name as never) ? 'not checked' : shown(name, processEnv[name]!, true), source: notChecked.includes(name as never) ? 'wrangler secret' : 'env', default: dflt };
    const given = name in vars;
    return { name, value: text(given ? settingOf(cfg, name) : dflt), source: given ? label : 'default', default: dflt };
  });
  return { subject, ok: true, rows, errors: [], warnings };
}
