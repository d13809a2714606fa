import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { jwtVerify, decodeProtectedHeader } from 'jose';
import { apnsKey, testPki, type ApnsTestKey, type TestPki } from './pki.ts';

/**
 * A fake APNs: HTTP/2 over TLS on 127.0.0.1 (the test PKI's certificate), answering like Apple's
 * provider API. Each request is checked as Apple checks it: the provider token (ES256 with the
 * key's public half, its kid and iss, iat at most an hour old), apns-topic, apns-push-type,
 * apns-priority, apns-expiration, apns-collapse-id (≤ 64 bytes), apns-id, the device token in the
 * path, the payload (JSON, ≤ 4096 bytes). Like Apple it allows one stream per session until a
 * provider token was accepted, then `maxStreams`.
 *
 * Behaviours, by the device token's prefix: `dead…` → 410 Unregistered with `deadAt` as its
 * timestamp, `bad…` → 400 BadDeviceToken, `busy…` → 429 TooManyRequests; anything else that is
 * 8-200 letters and digits is delivered. Switches: `unavailableFor(ms)` (503 to everything),
 * `rejectJwts` (403 InvalidProviderToken), `expireSeenJwts()` / `expireEveryJwt`
 * (403 ExpiredProviderToken), `stall` (never answer), `respond` (answer anything else),
 * `goaway({drop})`. More than `maxJwtsPerSession` distinct tokens on one session → 429
 * TooManyProviderTokenUpdates, as Apple does to a provider signing too often.
 */

export interface AcceptedApns {
  token: string;
  topic: string;
  pushType: string;
  priority: string | undefined;
  expiration: string | undefined;
  collapseId: string | undefined;
  apnsId: string;
  payload: { aps?: Record<string, unknown>; [k: string]: unknown };
  raw: string;
  /** No message text left: an alert with only a loc-key, and nothing but conv and seq beside aps. */
  contentFree: boolean;
  jwt: string;
  at: number;
}

export interface FakeApnsOptions {
  key?: ApnsTestKey;
  /** Bundle ids it accepts (apns-topic); default com.example.switchboard. */
  topics?: string[];
  /** Streams per session once a provider token was accepted (default 1000). */
  maxStreams?: number;
  /** Delay before each answer (ms). */
  latencyMs?: number;
  /** Accepted notifications kept in `accepted` (default 10,000); `acceptedCount` counts all. */
  keep?: number;
  /** Distinct provider tokens allowed per session (default 5). */
  maxJwtsPerSession?: number;
  pki?: TestPki;
}

/** The check for a content-free APNs payload (shared with tests of the recording provider). */
export function apnsContentFree(payload: unknown): boolean {
  if (typeof payload !== 'object' || payload === null) return false;
  const { aps, ...rest } = payload as { aps?: { alert?: unknown } };
  const alert = aps?.alert;
  const alertOk = typeof alert === 'object' && alert !== null && Object.keys(alert).every((k) => k === 'loc-key' || k === 'loc-args');
  const sb = (rest as { sb?: unknown }).sb;
  const restOk = Object.keys(rest).every((k) => k === 'sb') && typeof sb === 'object' && sb !== null && Object.keys(sb).every((k) => k === 'conv' || k === 'seq');
  return alertOk && restOk;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class FakeApns {
  readonly key: ApnsTestKey;
  readonly topics: string[];
  readonly origin: string;
  readonly port: number;
  readonly accepted: AcceptedApns[] = [];
  acceptedCount = 0;
  requests = 0;
  sessionsOpened = 0;
  /** Streams open at once, the most any session had. */
  maxConcurrentSeen = 0;
  /** Every distinct provider token seen. */
  readonly jwts = new Set<string>();
  /** The timestamp (ms) a `dead…` token's 410 carries. */
  deadAt = 1_700_000_000_000;
  /** Delay before each answer (ms); from the options, changeable while running. */
  latencyMs: number;
  /** Answers decided and not written yet (waiting out `latencyMs`): the senders' requests in flight. */
  answering = 0;
  rejectJwts = false;
  expireEveryJwt = false;
  stall = false;
  /** Answer a request otherwise (return null to let the checks run). */
  respond: ((req: { token: string; headers: http2.IncomingHttpHeaders }) => { status: number; reason: string } | null) | null = null;
  private unavailableUntil = 0;
  private readonly expiredJwts = new Set<string>();
  private readonly verified = new Map<string, number>();
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly stalled = new Set<http2.ServerHttp2Stream>();

  private constructor(
    private readonly server: http2.Http2SecureServer,
    private readonly opts: FakeApnsOptions,
    key: ApnsTestKey,
  ) {
    this.key = key;
    this.latencyMs = opts.latencyMs ?? 0;
    this.topics = opts.topics ?? ['com.example.switchboard'];
    this.port = (server.address() as AddressInfo).port;
    this.origin = `https://127.0.0.1:${this.port}`;
  }

  static async start(opts: FakeApnsOptions = {}): Promise<FakeApns> {
    const pki = opts.pki ?? testPki();
    const key = opts.key ?? apnsKey();
    const server = http2.createSecureServer({ key: pki.keyPem, cert: pki.certPem, settings: { maxConcurrentStreams: 1 } });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const fake = new FakeApns(server, opts, key);
    server.on('session', (s) => fake.onSession(s));
    server.on('stream', (stream, headers) => fake.onStream(stream, headers));
    return fake;
  }

  /** Environment for a region process whose APNs is this fake. */
  env(): Record<string, string> {
    return {
      APNS_ORIGIN: this.origin,
      APNS_CA_FILE: testPki().caFile,
      APNS_KEY_FILE: this.key.file,
      APNS_KEY_ID: this.key.keyId,
      APNS_TEAM_ID: this.key.teamId,
      APNS_TOPIC: this.topics[0]!,
    };
  }

  /** Answer 503 ServiceUnavailable to everything for `ms`. */
  unavailableFor(ms: number): void {
    this.unavailableUntil = Date.now() + ms;
  }

  /** Every provider token seen so far answers 403 ExpiredProviderToken from now on. */
  expireSeenJwts(): void {
    for (const j of this.jwts) this.expiredJwts.add(j);
  }

  /** Notifications accepted for one device token. */
  acceptedFor(token: string): AcceptedApns[] {
    return this.accepted.filter((a) => a.token === token);
  }

  /** Streams received and not answered (while `stall` is on). */
  get stalledCount(): number {
    return this.stalled.size;
  }

  /**
   * Sends GOAWAY on every open session: no new streams there, those already received still get
   * their answer. With `drop`, then closes the connections as Apple does when it shuts one down:
   * streams in flight get no answer.
   */
  goaway(opts: { drop?: boolean } = {}): void {
    for (const s of this.sessions) {
      if (s.closed || s.destroyed) continue;
      s.goaway(http2.constants.NGHTTP2_NO_ERROR);
      if (opts.drop) setImmediate(() => s.destroy());
    }
  }

  /** Back to defaults: switches off, records cleared (counters too). */
  reset(): void {
    this.rejectJwts = false;
    this.expireEveryJwt = false;
    this.stall = false;
    this.respond = null;
    this.unavailableUntil = 0;
    this.expiredJwts.clear();
    this.accepted.length = 0;
    this.acceptedCount = 0;
    this.requests = 0;
    this.maxConcurrentSeen = 0;
    for (const s of this.stalled) s.close(http2.constants.NGHTTP2_CANCEL);
    this.stalled.clear();
  }

  async close(): Promise<void> {
    for (const s of this.stalled) s.close(http2.constants.NGHTTP2_CANCEL);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) s.destroy();
    await closed;
  }

  private onSession(session: http2.ServerHttp2Session): void {
    this.sessionsOpened++;
    this.sessions.add(session);
    const state: SessionState = { open: 0, jwts: new Set(), refused: new Set(), raised: false };
    sessionState.set(session, state);
    session.on('close', () => this.sessions.delete(session));
    session.on('error', () => {});
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    this.requests++;
    const state = sessionState.get(stream.session as http2.ServerHttp2Session)!;
    state.open++;
    this.maxConcurrentSeen = Math.max(this.maxConcurrentSeen, state.open);
    stream.on('close', () => state.open--);
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      void this.handle(stream, headers, Buffer.concat(chunks), state).catch(() => stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
    });
  }

  private async handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer, state: SessionState): Promise<void> {
    const apnsId = typeof headers['apns-id'] === 'string' ? headers['apns-id'] : crypto.randomUUID();
    const answer = (status: number, reason?: string, extra?: Record<string, unknown>) => {
      const send = () => {
        if (stream.closed || stream.destroyed) return;
        stream.respond({ ':status': status, 'apns-id': apnsId, ...(reason ? { 'content-type': 'application/json' } : {}) });
        stream.end(reason ? JSON.stringify({ reason, ...extra }) : undefined);
      };
      if (this.latencyMs) {
        this.answering++;
        setTimeout(() => (this.answering--, send()), this.latencyMs);
      } else send();
    };
    if (this.stall) {
      this.stalled.add(stream);
      stream.on('close', () => this.stalled.delete(stream));
      return;
    }
    if (Date.now() < this.unavailableUntil) return answer(503, 'ServiceUnavailable');
    const path = String(headers[':path'] ?? '');
    const m = /^\/3\/device\/([^/?]*)$/.exec(path);
    if (headers[':method'] !== 'POST') return answer(405, 'MethodNotAllowed');
    if (!m) return answer(404, 'BadPath');

    // The provider token.
    const auth = headers.authorization;
    if (typeof auth !== 'string' || !auth.startsWith('bearer ')) return answer(403, 'MissingProviderToken');
    const jwt = auth.slice('bearer '.length);
    if (this.rejectJwts) return answer(403, 'InvalidProviderToken');
    if (!state.jwts.has(jwt)) {
      state.jwts.add(jwt);
      if (state.jwts.size > (this.opts.maxJwtsPerSession ?? 5)) state.refused.add(jwt);
    }
    if (state.refused.has(jwt)) return answer(429, 'TooManyProviderTokenUpdates');
    const tokenCheck = await this.checkJwt(jwt);
    if (tokenCheck) return answer(403, tokenCheck);
    this.jwts.add(jwt);
    if (!state.raised) {
      // As Apple: more streams once a provider token passed.
      state.raised = true;
      stream.session!.settings({ maxConcurrentStreams: this.opts.maxStreams ?? 1000 });
    }

    // Headers.
    const token = decodeURIComponent(m[1]!);
    const hook = this.respond?.({ token, headers });
    if (hook) return answer(hook.status, hook.reason);
    const topic = headers['apns-topic'];
    if (typeof topic !== 'string' || !topic) return answer(400, 'MissingTopic');
    if (!this.topics.includes(topic)) return answer(400, 'BadTopic');
    const pushType = headers['apns-push-type'];
    if (pushType !== 'alert' && pushType !== 'background') return answer(400, 'InvalidPushType');
    const priority = headers['apns-priority'] as string | undefined;
    if (priority !== undefined && priority !== '10' && priority !== '5' && priority !== '1') return answer(400, 'BadPriority');
    if (pushType === 'background' && priority !== '5') return answer(400, 'BadPriority');
    const expiration = headers['apns-expiration'] as string | undefined;
    if (expiration !== undefined && (!/^\d+$/.test(expiration) || Number(expiration) * 1000 > Date.now() + 31 * 24 * 3600_000)) return answer(400, 'BadExpirationDate');
    const collapseId = headers['apns-collapse-id'] as string | undefined;
    if (collapseId !== undefined && Buffer.byteLength(collapseId) > 64) return answer(400, 'BadCollapseId');
    if (headers['apns-id'] !== undefined && !UUID.test(String(headers['apns-id']))) return answer(400, 'BadMessageId');
    if (!/^[0-9A-Za-z]{8,200}$/.test(token)) return answer(400, 'BadDeviceToken');

    // The payload.
    if (body.length === 0) return answer(400, 'PayloadEmpty');
    if (body.length > 4096) return answer(413, 'PayloadTooLarge');
    let payload: AcceptedApns['payload'];
    try {
      payload = JSON.parse(body.toString('utf8')) as AcceptedApns['payload'];
    } catch {
      return answer(400, 'BadPayload');
    }
    if (typeof payload !== 'object' || payload === null || typeof payload.aps !== 'object') return answer(400, 'BadPayload');

    // The device.
    if (token.startsWith('dead')) return answer(410, 'Unregistered', { timestamp: this.deadAt });
    if (token.startsWith('bad')) return answer(400, 'BadDeviceToken');
    if (token.startsWith('busy')) return answer(429, 'TooManyRequests');
    this.acceptedCount++;
    if (this.accepted.length < (this.opts.keep ?? 10_000)) {
      const raw = body.toString('utf8');
      this.accepted.push({ token, topic, pushType, priority, expiration, collapseId, apnsId, payload, raw, contentFree: apnsContentFree(payload), jwt, at: Date.now() });
    }
    answer(200);
  }

  /** Null when Apple would take the token, else Apple's reason. */
  private async checkJwt(jwt: string): Promise<string | null> {
    if (this.expireEveryJwt || this.expiredJwts.has(jwt)) return 'ExpiredProviderToken';
    let iat = this.verified.get(jwt);
    if (iat === undefined) {
      try {
        const header = decodeProtectedHeader(jwt);
        if (header.alg !== 'ES256' || header.kid !== this.key.keyId) return 'InvalidProviderToken';
        const { payload } = await jwtVerify(jwt, this.key.publicKey, { algorithms: ['ES256'], issuer: this.key.teamId });
        if (typeof payload.iat !== 'number') return 'InvalidProviderToken';
        iat = payload.iat;
      } catch {
        return 'InvalidProviderToken';
      }
      this.verified.set(jwt, iat);
    }
    const age = Date.now() / 1000 - iat;
    if (age > 3600) return 'ExpiredProviderToken';
    if (age < -60) return 'InvalidProviderToken';
    return null;
  }
}

interface SessionState {
  open: number;
  jwts: Set<string>;
  refused: Set<string>;
  raised: boolean;
}
const sessionState = new WeakMap<http2.ServerHttp2Session, SessionState>();
