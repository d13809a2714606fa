import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../config-error.ts';
import { noteDefault } from '../settings-trace.ts';
import type { Logger } from '../log.ts';
import type { PushProvider, PushService } from './provider.ts';
import { ApnsProvider } from './provider-apns.ts';
import { FcmProvider } from './provider-fcm.ts';
import { RecordingProvider } from './provider-recording.ts';

/**
 * Push providers' configuration, read from the environment once and validated up front: every
 * file must exist and parse, and a bad value throws a ConfigError naming its variable.
 *
 * | variable | meaning |
 * |---|---|
 * | `APNS_KEY_FILE`, `APNS_KEY_ID`, `APNS_TEAM_ID`, `APNS_TOPIC` | all four turn APNs on (a partial set is an error): the .p8 key (P-256 PKCS#8 PEM), its 10-character key id, the team id, the app's bundle id |
 * | `APNS_ORIGIN` | an https:// (or h2c http://) origin serving sandbox and production registrations alike; default Apple's, by the registration's env |
 * | `APNS_CA_FILE` | an extra CA (PEM) to trust for APNs |
 * | `FCM_PROJECT_ID`, `FCM_SERVICE_ACCOUNT_FILE` | both turn FCM on: the Firebase project and its service account JSON |
 * | `FCM_ORIGIN` | an https:// origin every FCM and OAuth request is dialled to (TLS still names Google's hosts) |
 * | `FCM_CA_FILE` | an extra CA (PEM) to trust for FCM and OAuth |
 * | `PUSH_FALLBACK` | `recording` or `off`: what serves a service that is not configured; the caller's default |
 */

/** What serves a push service that is not configured: the recording stand-in, or nothing. */
export type PushFallback = 'recording' | 'off';

export interface ApnsConfig {
  keyFile: string;
  keyPem: string;
  keyId: string;
  teamId: string;
  topic: string;
  /** Null: Apple's origins, chosen by each registration's env. */
  origin: string | null;
  caFile: string | null;
  caPem: string | null;
}

export interface FcmConfig {
  projectId: string;
  serviceAccountFile: string;
  /** The service account's identity (its key is read again by firebase-admin from the file). */
  clientEmail: string;
  origin: string | null;
  caFile: string | null;
  caPem: string | null;
}

export interface PushProvidersConfig {
  /** Null: APNs not configured. */
  apns: ApnsConfig | null;
  /** Null: FCM not configured. */
  fcm: FcmConfig | null;
  fallback: PushFallback;
}

type EnvMap = Record<string, string | undefined>;

/** Reads and validates the push providers' configuration; `fallback` is PUSH_FALLBACK's default. */
export function loadPushProvidersConfig(env: EnvMap, defaults: { fallback: PushFallback }): PushProvidersConfig {
  const fallback = oneOf(env, 'PUSH_FALLBACK', defaults.fallback, ['recording', 'off'] as const);
  return { apns: loadApns(env), fcm: loadFcm(env), fallback };
}

function loadApns(env: EnvMap): ApnsConfig | null {
  const names = ['APNS_KEY_FILE', 'APNS_KEY_ID', 'APNS_TEAM_ID', 'APNS_TOPIC'] as const;
  const set = names.filter((n) => value(env, n) !== undefined);
  if (set.length === 0) return null;
  if (set.length < names.length) {
    const missing = names.filter((n) => !set.includes(n));
    throw new ConfigError(`${missing.join(', ')}: expected to be set with ${set.join(', ')} (APNs needs all of ${names.join(', ')}, or none)`);
  }
  const keyFile = path.resolve(value(env, 'APNS_KEY_FILE')!);
  const caFile = value(env, 'APNS_CA_FILE');
  return {
    keyFile,
    keyPem: p256Pkcs8(keyFile, 'APNS_KEY_FILE'),
    keyId: matching(env, 'APNS_KEY_ID', /^[A-Z0-9]{10}$/, 'a 10-character key id (A-Z, 0-9)'),
    teamId: matching(env, 'APNS_TEAM_ID', /^[A-Z0-9]{10}$/, 'a 10-character team id (A-Z, 0-9)'),
    topic: matching(env, 'APNS_TOPIC', /^[A-Za-z0-9][A-Za-z0-9.-]{0,254}$/, 'a bundle id such as com.example.chat'),
    origin: origin(env, 'APNS_ORIGIN', ['https:', 'http:']),
    caFile: caFile ? path.resolve(caFile) : null,
    caPem: caFile ? caPem(path.resolve(caFile), 'APNS_CA_FILE') : null,
  };
}

function loadFcm(env: EnvMap): FcmConfig | null {
  const projectId = value(env, 'FCM_PROJECT_ID');
  const file = value(env, 'FCM_SERVICE_ACCOUNT_FILE');
  if (projectId === undefined && file === undefined) return null;
  if (projectId === undefined) throw new ConfigError('FCM_PROJECT_ID: expected to be set with FCM_SERVICE_ACCOUNT_FILE (FCM needs both, or neither)');
  if (file === undefined) throw new ConfigError('FCM_SERVICE_ACCOUNT_FILE: expected to be set with FCM_PROJECT_ID (FCM needs both, or neither)');
  const serviceAccountFile = path.resolve(file);
  const caFile = value(env, 'FCM_CA_FILE');
  return {
    projectId: matching(env, 'FCM_PROJECT_ID', /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 'a Google Cloud project id (6-30 of a-z, 0-9, -)'),
    serviceAccountFile,
    clientEmail: serviceAccount(serviceAccountFile, 'FCM_SERVICE_ACCOUNT_FILE'),
    origin: origin(env, 'FCM_ORIGIN', ['https:']),
    caFile: caFile ? path.resolve(caFile) : null,
    caPem: caFile ? caPem(path.resolve(caFile), 'FCM_CA_FILE') : null,
  };
}

/**
 * One provider per configured service, and the recording stand-in for the services that are not
 * (when the fallback is `recording`; `recording` is null otherwise).
 */
export function createProviders(cfg: PushProvidersConfig, log: Logger): { providers: PushProvider[]; recording: RecordingProvider | null } {
  const providers: PushProvider[] = [];
  if (cfg.apns) {
    const { keyPem, keyId, teamId, topic, origin, caPem } = cfg.apns;
    providers.push(new ApnsProvider({ keyPem, keyId, teamId, topic, origin, caPem, log: log.child({ provider: 'apns' }) }));
  }
  if (cfg.fcm) {
    const { projectId, serviceAccountFile, origin, caPem } = cfg.fcm;
    providers.push(new FcmProvider({ projectId, serviceAccountFile, origin, caPem, log: log.child({ provider: 'fcm' }) }));
  }
  const unconfigured = (['apns', 'fcm'] as const satisfies readonly PushService[]).filter((s) => !cfg[s]);
  let recording: RecordingProvider | null = null;
  if (cfg.fallback === 'recording' && unconfigured.length > 0) {
    recording = new RecordingProvider({ serves: unconfigured, apnsTopic: cfg.apns?.topic ?? null, apnsOrigin: cfg.apns?.origin ?? null });
    providers.push(recording);
  }
  return { providers, recording };
}

// ---------------------------------------------------------------------------------------------

function value(env: EnvMap, name: string): string | undefined {
  const v = env[name]?.trim();
  return v ? v : undefined;
}

function oneOf<T extends string>(env: EnvMap, name: string, dflt: T, options: readonly T[]): T {
  noteDefault(env, name, dflt);
  const v = value(env, name);
  if (v === undefined) return dflt;
  if (!(options as readonly string[]).includes(v)) throw new ConfigError(`${name}: expected one of ${options.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

function matching(env: EnvMap, name: string, re: RegExp, what: string): string {
  const v = value(env, name) ?? '';
  if (!re.test(v)) throw new ConfigError(`${name}: expected ${what}, got ${JSON.stringify(v)}`);
  return v;
}

/** An origin (scheme, host, optional port; no path), or null when unset. */
function origin(env: EnvMap, name: string, protocols: string[]): string | null {
  const v = value(env, name);
  if (v === undefined) return null;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(`${name}: expected a ${protocols.join(' or ')} origin such as https://host:port, got ${JSON.stringify(v)}`);
  }
  if (!protocols.includes(u.protocol) || (u.pathname !== '/' && u.pathname !== '') || u.search || u.hash || u.username) {
    throw new ConfigError(`${name}: expected a ${protocols.join(' or ')} origin such as https://host:port (no path), got ${JSON.stringify(v)}`);
  }
  return u.origin;
}

function readText(file: string, name: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${name}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
}

/** The file's PEM when it is a P-256 private key in PKCS#8 (Apple's .p8). */
function p256Pkcs8(file: string, name: string): string {
  const pem = readText(file, name);
  const what = `a P-256 private key in PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----", Apple's .p8) in ${file}`;
  if (!/-----BEGIN PRIVATE KEY-----[\s\S]+-----END PRIVATE KEY-----/.test(pem)) throw new ConfigError(`${name}: expected ${what}`);
  let key: crypto.KeyObject;
  try {
    key = crypto.createPrivateKey({ key: pem, format: 'pem' });
  } catch (err) {
    throw new ConfigError(`${name}: expected ${what}: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new ConfigError(`${name}: expected ${what}, got a ${key.asymmetricKeyType} key${key.asymmetricKeyDetails?.namedCurve ? ` on ${key.asymmetricKeyDetails.namedCurve}` : ''}`);
  }
  return pem;
}

/** The file's client_email when it is a service account JSON with a usable private_key. */
function serviceAccount(file: string, name: string): string {
  const text = readText(file, name);
  let json: { client_email?: unknown; private_key?: unknown };
  try {
    json = JSON.parse(text) as typeof json;
  } catch {
    throw new ConfigError(`${name}: expected a service account JSON file, ${file} is not JSON`);
  }
  if (typeof json !== 'object' || json === null || typeof json.client_email !== 'string' || !json.client_email.includes('@')) {
    throw new ConfigError(`${name}: expected a service account JSON with "client_email" in ${file}`);
  }
  if (typeof json.private_key !== 'string') throw new ConfigError(`${name}: expected a service account JSON with "private_key" in ${file}`);
  try {
    crypto.createPrivateKey(json.private_key);
  } catch (err) {
    throw new ConfigError(`${name}: expected "private_key" in ${file} to be a PEM private key: ${(err as Error).message}`);
  }
  return json.client_email;
}

/** The file's text when it holds at least one PEM certificate, all parseable. */
function caPem(file: string, name: string): string {
  const text = readText(file, name);
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
  if (!blocks) throw new ConfigError(`${name}: expected PEM certificates ("-----BEGIN CERTIFICATE-----") in ${file}`);
  for (const b of blocks) {
    try {
      new crypto.X509Certificate(b);
    } catch (err) {
      throw new ConfigError(`${name}: expected PEM certificates in ${file}: ${(err as Error).message}`);
    }
  }
  return text;
}
