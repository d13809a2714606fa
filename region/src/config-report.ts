/**
 * The report of `npm run config:check` (Centrifugo's `checkconfig`): the environment is parsed by
 * exactly the code the region runs at start-up (loadConfig, through a traced copy of it), and every
 * setting read is listed with its value (secrets masked), where that value came from and its
 * default. An invalid value is a ConfigError, as at start-up; the check then falls back to that
 * variable's default and reads on, so one run names every invalid variable it can.
 */
import { ConfigError, loadConfig } from './config.ts';
import { traceEnv, type TracedSetting } from './settings-trace.ts';

type EnvMap = Record<string, string | undefined>;

export interface SettingRow {
  name: string;
  /** The value in effect as text: the environment's (masked when secret), else the default. */
  value: string;
  /** `env`, `default`, or where else it came from (the edge's wrangler.toml environment). */
  source: string;
  /** What an unset variable gives: a value, `required`, or `unset` (the feature is off). */
  default: string;
  /** The error naming this variable, when its value is invalid. */
  invalid?: string;
}

export interface ConfigReport {
  /** What was checked: `region`, or the edge and its wrangler environment. */
  subject: string;
  ok: boolean;
  rows: SettingRow[];
  /** Each error as thrown: its type (ConfigError) and message, which names the variable. */
  errors: { type: string; message: string }[];
  /** Advice that does not fail the check. */
  warnings: string[];
}

const SECRET_NAME = /SECRET|PASSWORD|PRIVATE|TOKEN$/i;
const LOG_LEVELS = ['debug', 'info', 'warn', 'error'];

/** Variables an error message names: its `NAME:` or `NAME, OTHER:` prefix. */
export function namedIn(message: string): string[] {
  const m = /^([A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)*):/.exec(message);
  return m ? m[1]!.split(', ') : [];
}

/** Every variable name a message mentions outside quoted values. */
function mentionedIn(message: string): string[] {
  return message.replace(/"(?:[^"\\]|\\.)*"/g, '').match(/\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b/g) ?? [];
}

/** A value as printed: secrets as their length only, URLs without their password. */
export function shown(name: string, value: string, secret: boolean): string {
  if (secret || (SECRET_NAME.test(name) && !name.endsWith('_FILE'))) return `****** (${value.length} characters)`;
  try {
    const u = new URL(value);
    if (u.password) {
      u.password = '******';
      return u.toString();
    }
  } catch {}
  return value;
}

export function regionReport(source: EnvMap): ConfigReport {
  const env: EnvMap = { ...source };
  const errors: ConfigReport['errors'] = [];
  const invalid = new Map<string, string>();
  let settings = new Map<string, TracedSetting>();
  // Each pass stops at the first invalid value, like start-up; its variable then takes its default.
  for (let pass = 0; pass < 100; pass++) {
    const trace = traceEnv(env);
    try {
      loadConfig(trace.env);
      settings = trace.settings;
      break;
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      settings = trace.settings;
      errors.push({ type: err.name, message: err.message });
      const named = namedIn(err.message);
      for (const n of named) invalid.set(n, err.message);
      const isSet = (n: string) => env[n] !== undefined && env[n] !== '';
      let set = named.filter(isSet);
      const missingSecrets = named.filter((n) => settings.get(n)?.secret && !set.includes(n));
      // Variables that must be given together ("…: expected to be set with APNS_KEY_ID"): the ones
      // given fall back to unset.
      if (set.length === 0 && missingSecrets.length === 0) set = mentionedIn(err.message).filter(isSet);
      for (const n of set) invalid.set(n, err.message);
      // A missing secret reads on with a stand-in (never shown); nothing else to fall back to: stop.
      if (set.length === 0 && missingSecrets.length === 0) break;
      for (const n of set) delete env[n];
      for (const n of missingSecrets) env[n] = 'x'.repeat(64);
    }
  }
  const rows = [...settings.values()].map((s) => row(s, source, invalid.get(s.name)));
  // Read when the logger loads, outside loadConfig: start-up logs at info when it is not a level.
  const warnings: string[] = [];
  const level = source.LOG_LEVEL;
  rows.push(row({ name: 'LOG_LEVEL', default: 'info', secret: false }, source));
  if (level && !LOG_LEVELS.includes(level)) warnings.push(`LOG_LEVEL: ${JSON.stringify(level)} is not one of ${LOG_LEVELS.join(', ')}; the region logs at info`);
  return { subject: 'region', ok: errors.length === 0, rows, errors, warnings };
}

function row(s: TracedSetting, source: EnvMap, invalid?: string): SettingRow {
  const raw = source[s.name];
  const set = raw !== undefined && raw.trim() !== '';
  const dflt = s.default ?? (s.secret ? 'required' : 'unset');
  // A secret read from the file its <NAME>_FILE names (a Docker or Compose secret).
  const file = `${s.name}_FILE`;
  if (s.secret && !set && source[file]?.trim()) return { name: s.name, value: `****** (from ${file})`, source: 'file', default: dflt, ...(invalid ? { invalid } : {}) };
  return {
    name: s.name,
    value: set ? shown(s.name, raw, s.secret) : dflt,
    source: set ? 'env' : 'default',
    default: dflt,
    ...(invalid ? { invalid } : {}),
  };
}

/** The report as a table for people, then its errors and warnings. */
export function formatReport(r: ConfigReport): string {
  const head = ['setting', 'value', 'source', 'default'];
  const cells = r.rows.map((x) => [x.name, x.invalid ? `${x.value}  << INVALID` : x.value, x.source, x.default]);
  const width = head.map((h, i) => Math.min(60, Math.max(h.length, ...cells.map((c) => c[i]!.length))));
  const line = (c: string[]) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(width[i]!))).join('  ');
  const out = [`${r.subject}: ${r.ok ? 'valid' : 'INVALID'}`, line(head), line(width.map((w) => '-'.repeat(w))), ...cells.map(line)];
  for (const e of r.errors) out.push(`${e.type}: ${e.message}`);
  for (const w of r.warnings) out.push(`warning: ${w}`);
  return out.join('\n') + '\n';
}
