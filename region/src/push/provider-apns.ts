import crypto from 'node:crypto';
import http2 from 'node:http2';
import tls from 'node:tls';
import { SignJWT } from 'jose';
import type { Logger } from '../log.ts';
import type { ProviderHealth, PushMessage, PushOutcome, PushProvider, PushRegistration, PushService } from './provider.ts';

/**
 * APNs over HTTP/2 with token-based auth (Apple's provider API): one long-lived session per origin,
 * reused by every send and opened again when it closes or goes away; an ES256 provider token signed
 * once and reused until it is `jwtRefreshMs` old (Apple refuses one older than 60 min and throttles
 * one newer than 20 min, so never per request). Every answer becomes a PushOutcome (push.md's
 * table); `send` never throws for what Apple or the network did.
 */

export const APNS_PRODUCTION = 'https://api.push.apple.com';
export const APNS_SANDBOX = 'https://api.sandbox.push.apple.com';
/** Apple's limit for an alert payload. */
export const APNS_MAX_PAYLOAD_BYTES = 4096;
/** Apple's limit for apns-collapse-id. */
export const COLLAPSE_ID_MAX_BYTES = 64;
/** Apple stores a notification at most this long; a later apns-expiration is clamped. */
const APNS_MAX_STORE_MS = 30 * 24 * 3600_000;
/** A device Apple throttles (429 TooManyRequests) is left alone at least this long. */
export const DEVICE_BACKOFF_MS = 60_000;

export interface ApnsOptions {
  /** The .p8 key's PKCS#8 PEM (P-256). */
  keyPem: string;
  keyId: string;
  teamId: string;
  /** apns-topic of registrations that name none (the app's bundle id). */
  topic: string;
  /** Serves every registration, sandbox or production (APNS_ORIGIN); null: Apple's by `env`. */
  origin?: string | null;
  /** An extra CA to trust besides the system's (APNS_CA_FILE), PEM. */
  caPem?: string | null;
  /** A send (waiting for a stream included) answers `retry_provider` after this. Default 10 s. */
  timeoutMs?: number;
  /** The provider token is signed again once this old. Default 40 min; Apple wants 20–60. */
  jwtRefreshMs?: number;
  /** Streams in flight per origin at most (fewer while Apple allows fewer). Default 500. */
  maxStreams?: number;
  /** A session is PINGed this often; one whose PING is unanswered by the next is dropped. Default 60 s. */
  pingMs?: number;
  /** Health stays `misconfigured` this long after a `config` outcome (ConfigHealth). Default 5 min. */
  configPauseMs?: number;
  log: Logger;
}

// ---------------------------------------------------------------------------------------------
// What is sent: pure functions, shared with the recording provider.

/** The JSON body Apple gets: content-free unless the message carries a preview. */
export interface ApnsPayload {
  aps: {
    alert: { 'loc-key': string } | { title: string; body: string };
    'mutable-content': 1;
    sound: 'default';
  };
  sb: { conv: string; seq: number };
}

/** One request to APNs, but its `authorization` (added per send from the cached provider token). */
export interface ApnsRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
}

export function apnsPayload(msg: PushMessage): ApnsPayload {
  const alert = msg.preview ? { title: msg.preview.from, body: msg.preview.text } : { 'loc-key': 'NEW_MESSAGE' };
  return { aps: { alert, 'mutable-content': 1, sound: 'default' }, sb: { conv: msg.conv, seq: msg.seq } };
}

/**
 * A UUID derived from the notification id alone, so a retry of the same notification carries the
 * same apns-id (Apple echoes it; logs on both sides line up). RFC 9562 version 8 (custom) layout.
 */
export function apnsId(notificationId: string): string {
  const b = crypto.createHash('sha256').update(`switchboard-push:${notificationId}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x80;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The collapse id as sent: itself when it fits 64 bytes, else its SHA-256 (base64url, 43 chars). */
export function boundedCollapseId(collapseId: string): string {
  if (Buffer.byteLength(collapseId) <= COLLAPSE_ID_MAX_BYTES) return collapseId;
  return crypto.createHash('sha256').update(collapseId).digest('base64url');
}

/** Which origin a registration goes to: APNS_ORIGIN when set, else Apple's for its `env`. */
export function apnsOrigin(reg: Pick<PushRegistration, 'env'>, configured: string | null | undefined): string {
  if (configured) return configured;
  return reg.env === 'sandbox' ? APNS_SANDBOX : APNS_PRODUCTION;
}

/**
 * The request for one notification, or the outcome that makes sending pointless: a message past
 * its `expireAt` or a payload over 4096 bytes is `bad_message` and never leaves.
 */
export function apnsRequest(
  reg: PushRegistration,
  msg: PushMessage,
  defaults: { topic?: string | null },
  now: number,
): { ok: true; request: ApnsRequest } | { ok: false; outcome: PushOutcome } {
  if (msg.expireAt <= now) return { ok: false, outcome: { kind: 'bad_message', reason: 'expired' } };
  const body = JSON.stringify(apnsPayload(msg));
  const size = Buffer.byteLength(body);
  if (size > APNS_MAX_PAYLOAD_BYTES) {
    return { ok: false, outcome: { kind: 'bad_message', reason: `PayloadTooLarge (${size} > ${APNS_MAX_PAYLOAD_BYTES} bytes)` } };
  }
  const headers: Record<string, string> = {
    'apns-push-type': 'alert',
    'apns-priority': '10',
    'apns-expiration': String(Math.floor(Math.min(msg.expireAt, now + APNS_MAX_STORE_MS) / 1000)),
    'apns-collapse-id': boundedCollapseId(msg.collapseId),
    'apns-id': apnsId(msg.id),
    'content-type': 'application/json',
  };
  const topic = reg.topic || defaults.topic;
  if (topic) headers['apns-topic'] = topic;
  return { ok: true, request: { path: `/3/device/${encodeURIComponent(reg.token)}`, headers, body } };
}

// ---------------------------------------------------------------------------------------------
// What Apple answered → PushOutcome.

const TOKEN_DEAD_REASONS = new Set(['BadDeviceToken', 'DeviceTokenNotForTopic', 'Unregistered']);
const CONFIG_REASONS = new Set([
  'InvalidProviderToken', 'ExpiredProviderToken', 'MissingProviderToken', 'TooManyProviderTokenUpdates',
  'BadTopic', 'MissingTopic', 'TopicDisallowed', 'BadCertificate', 'BadCertificateEnvironment',
]);

/** Seconds or an HTTP date in Retry-After, as milliseconds from now; undefined if absent or bad. */
export function retryAfterMs(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Apple's error body `{reason, timestamp}`; empty when the body is not Apple's (a proxy's page). */
export function apnsErrorBody(body: string): { reason: string; timestamp?: number } {
  try {
    const parsed = JSON.parse(body) as { reason?: unknown; timestamp?: unknown };
    const reason = typeof parsed.reason === 'string' ? parsed.reason : '';
    return typeof parsed.timestamp === 'number' ? { reason, timestamp: parsed.timestamp } : { reason };
  } catch {
    return { reason: '' };
  }
}

/** Classifies one HTTP answer of APNs (status, JSON `{reason, timestamp}` body, headers). */
export function classifyApnsAnswer(status: number, body: string, headers: http2.IncomingHttpHeaders, now: number): PushOutcome {
  if (status === 200) {
    const id = headers['apns-id'];
    return typeof id === 'string' ? { kind: 'delivered', providerId: id } : { kind: 'delivered' };
  }
  const { reason, timestamp } = apnsErrorBody(body);
  const why = `${status}${reason ? ` ${reason}` : ''}`;
  if (status === 410) return timestamp === undefined ? { kind: 'token_dead', reason: why } : { kind: 'token_dead', at: timestamp, reason: why };
  if (TOKEN_DEAD_REASONS.has(reason) && status === 400) return { kind: 'token_dead', reason: why };
  if (CONFIG_REASONS.has(reason) || status === 403) return { kind: 'config', reason: why };
  if (status === 429) {
    const after = retryAfterMs(headers['retry-after'], now);
    return { kind: 'retry_device', afterMs: Math.max(DEVICE_BACKOFF_MS, after ?? 0), reason: why };
  }
  if (status >= 500) {
    const after = retryAfterMs(headers['retry-after'], now);
    return after === undefined ? { kind: 'retry_provider', reason: why } : { kind: 'retry_provider', afterMs: after, reason: why };
  }
  return { kind: 'bad_message', reason: why };
}

// ---------------------------------------------------------------------------------------------
// Health after a configuration error (shared with the FCM provider).

/**
 * A provider's health: `misconfigured` from a `config` outcome until a send is delivered, or until
 * `pauseMs` passed: then `ok` again (its detail still naming the error), so that the next send
 * probes whether the trouble is gone (a provider-token throttle lifts, a revoked key is restored)
 * without a restart. Each fall into `misconfigured` is logged once, as an error.
 */
export class ConfigHealth {
  private reason: string | null = null;
  private until = 0;

  constructor(
    private readonly provider: string,
    private readonly pauseMs: number,
    private readonly log: Logger,
  ) {}

  health(now: number): ProviderHealth {
    if (this.reason === null) return { status: 'ok' };
    if (now < this.until) return { status: 'misconfigured', detail: this.reason };
    return { status: 'ok', detail: `probing after a configuration error: ${this.reason}` };
  }

  note(outcome: PushOutcome, now: number): void {
    if (outcome.kind === 'config') {
      if (now >= this.until) this.log.error(`${this.provider} misconfigured`, { reason: outcome.reason, pausedMs: this.pauseMs });
      this.reason = outcome.reason;
      this.until = now + this.pauseMs;
    } else if (outcome.kind === 'delivered' && this.reason !== null) {
      this.log.info(`${this.provider} delivering again`);
      this.reason = null;
      this.until = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The provider token.

/**
 * One ES256 provider token at a time, shared by every send; signed again once `refreshMs` old, or
 * when Apple called the current one expired (once per token, however many sends heard it).
 */
class ProviderToken {
  private current: { jwt: Promise<string>; value?: string; issuedAt: number } | null = null;
  signed = 0;

  constructor(
    private readonly key: crypto.KeyObject,
    private readonly keyId: string,
    private readonly teamId: string,
    private readonly refreshMs: number,
  ) {}

  get(now: number): Promise<string> {
    if (!this.current || now - this.current.issuedAt >= this.refreshMs) {
      const entry: { jwt: Promise<string>; value?: string; issuedAt: number } = { jwt: Promise.resolve(''), issuedAt: now };
      entry.jwt = new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: this.keyId })
        .setIssuer(this.teamId)
        .setIssuedAt(Math.floor(now / 1000))
        .sign(this.key)
        .then((jwt) => {
          entry.value = jwt;
          return jwt;
        });
      entry.jwt.catch(() => {
        if (this.current === entry) this.current = null;
      });
      this.current = entry;
      this.signed++;
    }
    return this.current.jwt;
  }

  /** Apple refused `jwt` as expired: the next `get` signs a new one unless that happened already. */
  expired(jwt: string): void {
    if (this.current?.value === jwt) this.current = null;
  }
}

// ---------------------------------------------------------------------------------------------
// One origin's HTTP/2 session and its stream budget.

type RawAnswer = { status: number; headers: http2.IncomingHttpHeaders; body: string } | { error: string };

/**
 * The session to one origin, opened on first use and again after it closed, failed or received
 * GOAWAY (in-flight streams finish on the old one or fail). Streams in flight are bounded by
 * `maxStreams` and by what the server allows (Apple: 1 until a provider token was accepted).
 * A session that does not connect within `timeoutMs`, or leaves a PING unanswered for a
 * `pingMs` interval, is destroyed, so a silently dead connection is not used again. The session
 * holds the process open only while streams are in flight.
 */
class OriginSession {
  private session: http2.ClientHttp2Session | null = null;
  private settingsSeen = false;
  private inFlight = 0;
  private readonly waiters: Array<{ wake: () => void }> = [];
  opened = 0;

  constructor(
    readonly origin: string,
    private readonly secureContext: tls.SecureContext | undefined,
    private readonly maxStreams: number,
    private readonly timeoutMs: number,
    private readonly pingMs: number,
    private readonly log: Logger,
  ) {}

  private current(): http2.ClientHttp2Session {
    const s = this.session;
    if (s && !s.closed && !s.destroyed) return s;
    const session = http2.connect(this.origin, { ...(this.secureContext ? { secureContext: this.secureContext } : {}), settings: { enablePush: false } });
    this.session = session;
    this.settingsSeen = false;
    this.opened++;
    const connectTimer = setTimeout(() => session.destroy(new Error(`no connection within ${this.timeoutMs} ms`)), this.timeoutMs).unref();
    let pingOut = false;
    const pinger = setInterval(() => {
      if (pingOut) return session.destroy(new Error('PING unanswered'));
      pingOut = true;
      session.ping((err) => {
        if (!err) pingOut = false;
      });
    }, this.pingMs).unref();
    const drop = (why: string) => {
      clearTimeout(connectTimer);
      clearInterval(pinger);
      if (this.session !== session) return;
      this.session = null;
      this.log.debug('apns session dropped', { origin: this.origin, why });
      this.pump();
    };
    session.on('connect', () => clearTimeout(connectTimer));
    session.on('remoteSettings', () => {
      if (this.session !== session) return;
      this.settingsSeen = true;
      this.pump();
    });
    session.on('goaway', (code) => drop(`goaway ${code}`));
    session.on('close', () => drop('closed'));
    session.on('error', (err) => drop(`error: ${err.message}`));
    session.on('frameError', (type, code) => this.log.debug('apns frame error', { origin: this.origin, type, code }));
    session.unref();
    return session;
  }

  /** Streams the current session may carry now. */
  private limit(): number {
    const s = this.session;
    if (!s || !this.settingsSeen) return 1;
    const remote = s.remoteSettings.maxConcurrentStreams ?? this.maxStreams;
    return Math.max(1, Math.min(this.maxStreams, remote));
  }

  private pump(): void {
    while (this.waiters.length && this.inFlight < this.limit()) {
      this.inFlight++;
      this.waiters.shift()!.wake();
    }
  }

  /** Resolves true with a stream slot taken, or false when `deadline` passed first. */
  private acquire(deadline: number): Promise<boolean> {
    if (this.inFlight < this.limit() && this.waiters.length === 0) {
      this.inFlight++;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const waiter = {
        wake: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
      }, Math.max(0, deadline - Date.now()));
      this.waiters.push(waiter);
    });
  }

  private release(): void {
    this.inFlight--;
    if (this.inFlight === 0) this.session?.unref();
    this.pump();
  }

  async request(path: string, headers: Record<string, string>, body: string, deadline: number): Promise<RawAnswer> {
    if (!(await this.acquire(deadline))) return { error: 'timeout waiting for a stream' };
    return new Promise<RawAnswer>((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const done = (a: RawAnswer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.release();
        resolve(a);
      };
      let session: http2.ClientHttp2Session;
      let stream: http2.ClientHttp2Stream;
      try {
        session = this.current();
        session.ref();
        stream = session.request({ ':method': 'POST', ':path': path, ...headers }, { endStream: false });
      } catch (err) {
        done({ error: `request failed: ${(err as Error).message}` });
        return;
      }
      timer = setTimeout(() => {
        done({ error: session.connecting ? 'timeout connecting' : 'timeout' });
        stream.close(http2.constants.NGHTTP2_CANCEL);
        // Not even connected: the next send dials again rather than wait on this connection.
        if (session.connecting) session.destroy();
      }, Math.max(0, deadline - Date.now()));
      let status = 0;
      let respHeaders: http2.IncomingHttpHeaders = {};
      let text = '';
      stream.setEncoding('utf8');
      stream.on('response', (h) => {
        status = Number(h[':status']);
        respHeaders = h;
      });
      stream.on('data', (chunk: string) => (text += chunk));
      stream.on('end', () => done(status ? { status, headers: respHeaders, body: text } : { error: 'no response' }));
      stream.on('error', (err) => done({ error: `${session.closed ? 'session gone' : 'stream error'}: ${err.message}` }));
      stream.on('close', () => done(status ? { status, headers: respHeaders, body: text } : { error: `stream closed (code ${stream.rstCode})` }));
      stream.end(body);
    });
  }

  async close(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (!s || s.destroyed) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        s.destroy();
        resolve();
      }, 1000);
      s.close(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}

// ---------------------------------------------------------------------------------------------

/** Apple's APNs (see the top of this file). */
export class ApnsProvider implements PushProvider {
  readonly name = 'apns';
  readonly serves: readonly PushService[] = ['apns'];
  private readonly token: ProviderToken;
  private readonly sessions = new Map<string, OriginSession>();
  /** With APNS_CA_FILE: the system's CAs and that one, made once for every session. */
  private readonly secureContext: tls.SecureContext | undefined;
  private readonly timeoutMs: number;
  private readonly maxStreams: number;
  private readonly state: ConfigHealth;
  private closed = false;

  constructor(private readonly opts: ApnsOptions) {
    this.state = new ConfigHealth('apns', opts.configPauseMs ?? 5 * 60_000, opts.log);
    const key = crypto.createPrivateKey(opts.keyPem);
    this.token = new ProviderToken(key, opts.keyId, opts.teamId, opts.jwtRefreshMs ?? 40 * 60_000);
    this.secureContext = opts.caPem ? tls.createSecureContext({ ca: [...tls.rootCertificates, opts.caPem] }) : undefined;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxStreams = opts.maxStreams ?? 500;
  }

  /** Provider tokens signed so far (apns_jwt_generated_total). */
  get jwtsSigned(): number {
    return this.token.signed;
  }

  /** HTTP/2 sessions opened so far, all origins. */
  get sessionsOpened(): number {
    let n = 0;
    for (const s of this.sessions.values()) n += s.opened;
    return n;
  }

  health(): ProviderHealth {
    return this.state.health(Date.now());
  }

  async send(reg: PushRegistration, msg: PushMessage): Promise<PushOutcome> {
    if (reg.service !== 'apns') throw new TypeError(`apns provider given a ${reg.service} registration`);
    if (this.closed) throw new Error('apns provider is closed');
    const now = Date.now();
    const built = apnsRequest(reg, msg, { topic: this.opts.topic }, now);
    if (!built.ok) return built.outcome;
    const origin = apnsOrigin(reg, this.opts.origin);
    let session = this.sessions.get(origin);
    if (!session) {
      session = new OriginSession(origin, this.secureContext, this.maxStreams, this.timeoutMs, this.opts.pingMs ?? 60_000, this.opts.log);
      this.sessions.set(origin, session);
    }
    const outcome = await this.attempt(session, built.request, now + this.timeoutMs, false);
    this.state.note(outcome, Date.now());
    return outcome;
  }

  private async attempt(session: OriginSession, req: ApnsRequest, deadline: number, refreshed: boolean): Promise<PushOutcome> {
    const jwt = await this.token.get(Date.now());
    const answer = await session.request(req.path, { ...req.headers, authorization: `bearer ${jwt}` }, req.body, deadline);
    if ('error' in answer) return { kind: 'retry_provider', reason: answer.error };
    if (answer.status === 403 && !refreshed && apnsErrorBody(answer.body).reason === 'ExpiredProviderToken') {
      // Our token aged out (clock skew, a long pause): sign a new one and try once more.
      this.token.expired(jwt);
      return this.attempt(session, req, deadline, true);
    }
    return classifyApnsAnswer(answer.status, answer.body, answer.headers, Date.now());
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.sessions.values()].map((s) => s.close()));
  }
}
