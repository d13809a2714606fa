import { AsyncLocalStorage } from 'node:async_hooks';
import crypto from 'node:crypto';
import dc from 'node:diagnostics_channel';
import type { ClientRequest, IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import zlib from 'node:zlib';
import { cert, deleteApp, initializeApp, type App } from 'firebase-admin/app';
import { getMessaging, type Message, type Messaging } from 'firebase-admin/messaging';
import type { Logger } from '../log.ts';
import type { ProviderHealth, PushMessage, PushOutcome, PushProvider, PushRegistration, PushService } from './provider.ts';
import { ConfigHealth, DEVICE_BACKOFF_MS, boundedCollapseId, retryAfterMs } from './provider-apns.ts';

/**
 * FCM HTTP v1 through firebase-admin 13.x: one `send()` per token (not `sendEach`, whose HTTP/2
 * transport ignores the agent: push.md), each provider its own named app. Every answer becomes a
 * PushOutcome (push.md's table); `send` never throws for what Google or the network did.
 *
 * firebase-admin hides two things the table needs: it maps a bare NOT_FOUND (a wrong project id)
 * to the same `registration-token-not-registered` as FCM's UNREGISTERED, and it drops Retry-After.
 * Both are read from the raw response through Node's `http.client.*` diagnostics channels, for
 * the requests of this file's agent only: a token is dead only when FCM said UNREGISTERED.
 */

/** FCM keeps a message at most 28 days. */
const FCM_MAX_TTL_MS = 28 * 24 * 3600_000;
/** FCM's limit on a message's data. */
export const FCM_MAX_DATA_BYTES = 4096;
/** After QUOTA_EXCEEDED Google asks for at least a minute. */
const QUOTA_BACKOFF_MS = 60_000;
/** After UNAVAILABLE / INTERNAL at least a second. */
const SERVER_BACKOFF_MS = 1000;

export interface FcmOptions {
  projectId: string;
  /** The service account JSON file (FCM_SERVICE_ACCOUNT_FILE). */
  serviceAccountFile: string;
  /**
   * FCM_ORIGIN: every request (OAuth token and FCM) dials this https origin's host and port while
   * TLS still names the real host (fcm.googleapis.com, oauth2.googleapis.com). Null: Google's.
   */
  origin?: string | null;
  /** An extra CA to trust besides the system's (FCM_CA_FILE), PEM. */
  caPem?: string | null;
  /**
   * A send answers `retry_provider` after this, while firebase-admin may still be retrying (it
   * retries 503 four times over 7 s and times one request out after 15 s). Default 30 s.
   */
  timeoutMs?: number;
  /** Health stays `misconfigured` this long after a `config` outcome (ConfigHealth). Default 5 min. */
  configPauseMs?: number;
  log: Logger;
}

// ---------------------------------------------------------------------------------------------
// What is sent: a pure function, shared with the recording provider.

/**
 * The message handed to firebase-admin's `send()`: a data message (the app wakes, syncs and shows
 * its own notification), `high` priority, the TTL left until `expireAt`, one collapse key per
 * conversation; the preview in data fields `sender` and `text` only when the message carries one
 * (FCM reserves the data key `from`).
 * A message past its `expireAt` or with data over 4096 bytes is `bad_message` and never leaves.
 */
export function fcmMessage(
  reg: PushRegistration,
  msg: PushMessage,
  now: number,
): { ok: true; message: Message & { token: string; data: Record<string, string> } } | { ok: false; outcome: PushOutcome } {
  if (msg.expireAt <= now) return { ok: false, outcome: { kind: 'bad_message', reason: 'expired' } };
  const data: Record<string, string> = { conv: msg.conv, seq: String(msg.seq) };
  if (msg.preview) {
    data.sender = msg.preview.from;
    data.text = msg.preview.text;
  }
  const size = Buffer.byteLength(JSON.stringify(data));
  if (size > FCM_MAX_DATA_BYTES) {
    return { ok: false, outcome: { kind: 'bad_message', reason: `message too big (${size} > ${FCM_MAX_DATA_BYTES} bytes of data)` } };
  }
  return {
    ok: true,
    message: {
      token: reg.token,
      data,
      // Whole seconds: FCM counts in seconds, and the same message always shows the same TTL.
      android: { priority: 'high', ttl: Math.floor(Math.min(msg.expireAt - now, FCM_MAX_TTL_MS) / 1000) * 1000, collapseKey: boundedCollapseId(msg.collapseId) },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The agent, and what it sees of the raw answers.

/** What the last FCM response of one send said, beyond what firebase-admin's error keeps. */
interface SendObservation {
  status?: number;
  retryAfterMs?: number;
  /** FcmError detail's errorCode (UNREGISTERED, INVALID_ARGUMENT, QUOTA_EXCEEDED, …). */
  fcmCode?: string;
  /** The google.rpc status (NOT_FOUND, …). */
  rpcStatus?: string;
}

const observing = new AsyncLocalStorage<SendObservation>();
const watched = new WeakMap<ClientRequest, { agent: FcmAgent; obs: SendObservation | null }>();

/**
 * The https.Agent of every FCM provider request, OAuth token included: keep-alive, bounded, an
 * extra CA, and (with an origin) every connection dialled to that origin instead of the real host.
 */
class FcmAgent extends https.Agent {
  /** The HTTP status of the last OAuth token request (this agent's service account); null while it has none. */
  tokenStatus: number | null = null;
  users = 0;

  constructor(private readonly dial: URL | null, caPem: string | null | undefined) {
    // One secure context for every connection: `ca` here would parse every root CA per connection.
    super({ keepAlive: true, maxSockets: 512, ...(caPem ? { secureContext: tls.createSecureContext({ ca: [...tls.rootCertificates, caPem] }) } : {}) });
  }

  override createConnection(options: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
    if (!this.dial) return super.createConnection(options, callback);
    const servername = options.servername || options.host || undefined;
    return super.createConnection({ ...options, host: this.dial.hostname, port: Number(this.dial.port || 443), servername }, callback);
  }
}

dc.subscribe('http.client.request.start', (m) => {
  const request = (m as { request: ClientRequest & { agent?: unknown } }).request;
  const agent = request.agent;
  if (!(agent instanceof FcmAgent)) return;
  const isSend = request.path.startsWith('/v1/');
  if (!isSend && request.path === '/token') agent.tokenStatus = null;
  watched.set(request, { agent, obs: isSend ? (observing.getStore() ?? null) : null });
});

dc.subscribe('http.client.response.finish', (m) => {
  const { request, response } = m as { request: ClientRequest; response: IncomingMessage };
  const w = watched.get(request);
  if (!w) return;
  const status = response.statusCode ?? 0;
  if (!w.obs) {
    if (request.path === '/token') w.agent.tokenStatus = status;
    return;
  }
  const obs = w.obs;
  for (const k of Object.keys(obs) as (keyof SendObservation)[]) delete obs[k];
  obs.status = status;
  const after = retryAfterMs(response.headers['retry-after'], Date.now());
  if (after !== undefined) obs.retryAfterMs = after;
  if (status < 400) return;
  // Read the error body beside firebase-admin (both listeners get every chunk).
  const chunks: Buffer[] = [];
  response.on('data', (c: Buffer) => chunks.push(c));
  response.on('end', () => {
    try {
      let raw = Buffer.concat(chunks);
      const enc = response.headers['content-encoding'];
      if (enc === 'gzip' || enc === 'deflate') raw = zlib.unzipSync(raw);
      const err = (JSON.parse(raw.toString('utf8')) as { error?: { status?: unknown; details?: unknown } }).error;
      if (typeof err?.status === 'string') obs.rpcStatus = err.status;
      if (Array.isArray(err?.details)) {
        for (const d of err.details as { '@type'?: unknown; errorCode?: unknown }[]) {
          if (d['@type'] === 'type.googleapis.com/google.firebase.fcm.v1.FcmError' && typeof d.errorCode === 'string') obs.fcmCode = d.errorCode;
        }
      }
    } catch {
      // Not Google's JSON: the status alone stays observed.
    }
  });
});

/**
 * One agent per service account file for the process (its OAuth token requests and its sends).
 * firebase-admin's `cert()` keeps the first credential made for a file path, with the agent it was
 * given, so a file must always come with the same agent, hence the same origin and CA.
 */
const agents = new Map<string, { agent: FcmAgent; origin: string; ca: string }>();

export class FcmSetupError extends Error {
  override name = 'FcmSetupError';
}

function agentFor(origin: string | null | undefined, caPem: string | null | undefined, file: string): FcmAgent {
  const want = { origin: origin ?? 'google', ca: caPem ? crypto.createHash('sha256').update(caPem).digest('hex') : 'system' };
  const known = agents.get(file);
  if (known && (known.origin !== want.origin || known.ca !== want.ca)) {
    throw new FcmSetupError(`FCM_SERVICE_ACCOUNT_FILE ${file} is already used in this process with another FCM_ORIGIN or FCM_CA_FILE (firebase-admin keeps one credential per file)`);
  }
  if (known) return known.agent;
  const agent = new FcmAgent(origin ? new URL(origin) : null, caPem);
  agents.set(file, { agent, ...want });
  return agent;
}

// ---------------------------------------------------------------------------------------------
// firebase-admin's error → PushOutcome.

/** Classifies a rejected `send()` with what the agent saw of the last response. */
function classifyFcmError(err: unknown, obs: SendObservation, tokenStatus: number | null): PushOutcome {
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : '';
  const message = err instanceof Error ? err.message : String(err);
  const why = `${code || 'error'}: ${message}`.slice(0, 300);
  const after = (floor: number) => Math.max(floor, obs.retryAfterMs ?? 0);
  switch (code) {
    case 'messaging/registration-token-not-registered':
      // A bare NOT_FOUND is what a wrong project id gets for every token: never delete on it.
      if (obs.fcmCode === 'UNREGISTERED' || obs.rpcStatus === 'UNREGISTERED') return { kind: 'token_dead', reason: 'UNREGISTERED' };
      return { kind: 'config', reason: `NOT_FOUND without UNREGISTERED (is FCM_PROJECT_ID right?): ${message}`.slice(0, 300) };
    case 'messaging/invalid-registration-token':
      return { kind: 'token_dead', reason: why };
    case 'messaging/invalid-argument':
      return /not a valid FCM registration token/i.test(message) ? { kind: 'token_dead', reason: why } : { kind: 'bad_message', reason: why };
    case 'messaging/third-party-auth-error':
    case 'messaging/mismatched-credential':
    case 'messaging/authentication-error':
    case 'messaging/invalid-package-name':
      return { kind: 'config', reason: why };
    case 'app/invalid-credential':
      // The OAuth token could not be had: refused (4xx) is ours to fix; unreachable or 5xx is Google's.
      return tokenStatus !== null && tokenStatus >= 400 && tokenStatus < 500 ? { kind: 'config', reason: why } : { kind: 'retry_provider', reason: why };
    case 'messaging/message-rate-exceeded':
    case 'messaging/topics-message-rate-exceeded':
      return { kind: 'retry_provider', afterMs: after(QUOTA_BACKOFF_MS), reason: why };
    case 'messaging/device-message-rate-exceeded':
      return { kind: 'retry_device', afterMs: after(DEVICE_BACKOFF_MS), reason: why };
    case 'messaging/server-unavailable':
    case 'messaging/internal-error':
      return { kind: 'retry_provider', afterMs: after(SERVER_BACKOFF_MS), reason: why };
    case 'messaging/payload-size-limit-exceeded':
    case 'messaging/invalid-payload':
    case 'messaging/invalid-data-payload-key':
    case 'messaging/invalid-options':
    case 'messaging/invalid-recipient':
      return { kind: 'bad_message', reason: why };
    default:
      // unknown-error, app/network-error, app/network-timeout, anything new: the transport's trouble.
      return obs.retryAfterMs === undefined ? { kind: 'retry_provider', reason: why } : { kind: 'retry_provider', afterMs: obs.retryAfterMs, reason: why };
  }
}

// ---------------------------------------------------------------------------------------------

let appSeq = 0;

/** Google's FCM (see the top of this file). */
export class FcmProvider implements PushProvider {
  readonly name = 'fcm';
  readonly serves: readonly PushService[] = ['fcm'];
  private readonly app: App;
  private readonly messaging: Messaging;
  private readonly agent: FcmAgent;
  private readonly timeoutMs: number;
  private readonly state: ConfigHealth;
  private closed = false;

  constructor(private readonly opts: FcmOptions) {
    this.state = new ConfigHealth('fcm', opts.configPauseMs ?? 5 * 60_000, opts.log);
    this.agent = agentFor(opts.origin, opts.caPem, opts.serviceAccountFile);
    // The agent goes both ways: cert()'s carries the OAuth token request, httpAgent the FCM calls.
    this.app = initializeApp(
      { credential: cert(opts.serviceAccountFile, this.agent), projectId: opts.projectId, httpAgent: this.agent },
      `switchboard-fcm-${process.pid}-${++appSeq}`,
    );
    this.messaging = getMessaging(this.app);
    this.agent.users++;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  health(): ProviderHealth {
    return this.state.health(Date.now());
  }

  async send(reg: PushRegistration, msg: PushMessage): Promise<PushOutcome> {
    if (reg.service !== 'fcm') throw new TypeError(`fcm provider given a ${reg.service} registration`);
    if (this.closed) throw new Error('fcm provider is closed');
    const built = fcmMessage(reg, msg, Date.now());
    if (!built.ok) return built.outcome;
    const obs: SendObservation = {};
    // async: firebase-admin validates synchronously, and a throw there is a rejection here too.
    const sending = observing.run(obs, async () => this.messaging.send(built.message));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), this.timeoutMs)));
    let outcome: PushOutcome;
    try {
      const result = await Promise.race([sending, timeout]);
      outcome = result === 'timeout' ? { kind: 'retry_provider', reason: `timeout after ${this.timeoutMs} ms` } : { kind: 'delivered', providerId: result };
    } catch (err) {
      outcome = classifyFcmError(err, obs, this.agent.tokenStatus);
    } finally {
      clearTimeout(timer);
    }
    // A send abandoned at the deadline still settles later: its answer no longer matters.
    sending.catch(() => {});
    this.state.note(outcome, Date.now());
    return outcome;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await deleteApp(this.app);
    // The agent outlives its last provider (cert() keeps it for the file), its sockets do not.
    if (--this.agent.users === 0) this.agent.destroy();
  }
}
