import crypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { jwtVerify } from 'jose';
import { serviceAccount, testPki, type TestPki, type TestServiceAccount } from './pki.ts';

/**
 * A fake FCM: HTTPS (HTTP/2 with HTTP/1.1 allowed, as firebase-admin's `send()` uses 1.1) on
 * 127.0.0.1, standing in for both hosts firebase-admin talks to, reached through FCM_ORIGIN:
 * - `POST /token` as oauth2.googleapis.com: a JWT-bearer grant whose assertion must be signed by
 *   its service account's key (RS256; iss = client_email, aud = the token URL, a messaging scope);
 *   answers a bearer token of its own;
 * - `POST /v1/projects/<id>/messages:send` as fcm.googleapis.com: checks the bearer token it
 *   issued, the project id (another → bare 404 NOT_FOUND, as for a wrong project), the message
 *   shape (one token; data of strings without FCM's reserved keys; android priority, ttl ≤ 28 days,
 *   collapse_key; data ≤ 4096 bytes).
 *
 * Behaviours, by the registration token's prefix: `dead…` → 404 UNREGISTERED, `bad…` → 400
 * INVALID_ARGUMENT "not a valid FCM registration token", `busy…` → 429 QUOTA_EXCEEDED. Switches:
 * `unavailableFor(ms, retryAfterS?)` (503 UNAVAILABLE), `rejectBearer` (401 UNAUTHENTICATED),
 * `rejectAssertions` (the token endpoint answers 400 invalid_grant), `stall`, `respond`.
 */

export interface AcceptedFcm {
  token: string;
  message: { token?: string; data?: Record<string, string>; android?: Record<string, unknown>; [k: string]: unknown };
  /** Data holds conv and seq only, and there is no notification block. */
  contentFree: boolean;
  validateOnly: boolean;
  at: number;
}

export interface FakeFcmOptions {
  projectId?: string;
  /** Delay before each answer to a send (ms). */
  latencyMs?: number;
  /** Accepted messages kept in `accepted` (default 10,000); `acceptedCount` counts all. */
  keep?: number;
  pki?: TestPki;
}

/** The check for a content-free FCM message (shared with tests of the recording provider). */
export function fcmContentFree(message: unknown): boolean {
  if (typeof message !== 'object' || message === null) return false;
  const m = message as { data?: Record<string, unknown>; notification?: unknown; android?: { notification?: unknown } };
  if (m.notification !== undefined || m.android?.notification !== undefined) return false;
  return typeof m.data === 'object' && m.data !== null && Object.keys(m.data).every((k) => k === 'conv' || k === 'seq');
}

const FCM_ERROR = 'type.googleapis.com/google.firebase.fcm.v1.FcmError';
const RESERVED_DATA_KEY = /^(from|notification|message_type|google.*|gcm.*)$/i;
const SCOPES = ['https://www.googleapis.com/auth/firebase.messaging', 'https://www.googleapis.com/auth/cloud-platform'];

/** A Google API error body, as FCM and its front end answer. */
export function googleError(status: number, rpcStatus: string, message: string, fcmCode?: string): string {
  const details = fcmCode ? [{ '@type': FCM_ERROR, errorCode: fcmCode }] : undefined;
  return JSON.stringify({ error: { code: status, message, status: rpcStatus, ...(details ? { details } : {}) } });
}

export class FakeFcm {
  readonly projectId: string;
  readonly account: TestServiceAccount;
  readonly origin: string;
  readonly port: number;
  readonly accepted: AcceptedFcm[] = [];
  acceptedCount = 0;
  /** Send requests received (firebase-admin's own retries included). */
  requests = 0;
  /** Bearer tokens issued by the token endpoint. */
  tokensIssued = 0;
  /** Connections accepted (TCP). */
  connections = 0;
  /** Delay before each answer to a send (ms); from the options, changeable while running. */
  latencyMs: number;
  /** Answers to sends decided and not written yet (waiting out `latencyMs`): the senders' requests in flight. */
  answering = 0;
  rejectBearer = false;
  rejectAssertions = false;
  stall = false;
  respond: ((req: { token: string; message: AcceptedFcm['message'] }) => { status: number; body: string; headers?: Record<string, string> } | null) | null = null;
  private unavailable: { until: number; retryAfterS?: number } | null = null;
  private readonly issued = new Set<string>();
  private readonly sockets = new Set<Socket>();
  private readonly stalled = new Set<ServerResponse | http2.Http2ServerResponse>();

  private constructor(
    private readonly server: http2.Http2SecureServer,
    private readonly opts: FakeFcmOptions,
    projectId: string,
  ) {
    this.projectId = projectId;
    this.latencyMs = opts.latencyMs ?? 0;
    this.account = serviceAccount(projectId);
    this.port = (server.address() as AddressInfo).port;
    this.origin = `https://127.0.0.1:${this.port}`;
  }

  static async start(opts: FakeFcmOptions = {}): Promise<FakeFcm> {
    const pki = opts.pki ?? testPki();
    const server = http2.createSecureServer({ key: pki.keyPem, cert: pki.certPem, allowHTTP1: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const fake = new FakeFcm(server, opts, opts.projectId ?? 'switchboard-test');
    server.on('secureConnection', (socket: Socket) => {
      fake.connections++;
      fake.sockets.add(socket);
      socket.on('close', () => fake.sockets.delete(socket));
    });
    server.on('request', (req, res) => void fake.handle(req, res).catch(() => res.destroy()));
    return fake;
  }

  /** Environment for a region process whose FCM is this fake. */
  env(): Record<string, string> {
    return {
      FCM_PROJECT_ID: this.projectId,
      FCM_SERVICE_ACCOUNT_FILE: this.account.file,
      FCM_ORIGIN: this.origin,
      FCM_CA_FILE: testPki().caFile,
    };
  }

  /** Answer 503 UNAVAILABLE to every send for `ms`, with Retry-After when given. */
  unavailableFor(ms: number, retryAfterS?: number): void {
    this.unavailable = { until: Date.now() + ms, ...(retryAfterS === undefined ? {} : { retryAfterS }) };
  }

  acceptedFor(token: string): AcceptedFcm[] {
    return this.accepted.filter((a) => a.token === token);
  }

  get stalledCount(): number {
    return this.stalled.size;
  }

  /** Back to defaults: switches off, records cleared (issued bearer tokens stay valid). */
  reset(): void {
    this.rejectBearer = false;
    this.rejectAssertions = false;
    this.stall = false;
    this.respond = null;
    this.unavailable = null;
    this.accepted.length = 0;
    this.acceptedCount = 0;
    this.requests = 0;
    for (const r of this.stalled) r.destroy();
    this.stalled.clear();
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    await closed;
  }

  private async handle(req: IncomingMessage | http2.Http2ServerRequest, res: ServerResponse | http2.Http2ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = req.url ?? '';
    const reply = (status: number, text: string, headers: Record<string, string> = {}) => {
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
        res.end(text);
      };
      if (this.latencyMs && url !== '/token') {
        this.answering++;
        setTimeout(() => (this.answering--, send()), this.latencyMs);
      } else send();
    };
    if (req.method !== 'POST') return reply(405, googleError(405, 'METHOD_NOT_ALLOWED', 'POST only'));
    if (url === '/token') return this.token(body, reply);
    const m = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(url);
    if (!m) return reply(404, googleError(404, 'NOT_FOUND', `no route ${url}`));
    this.requests++;

    const auth = req.headers.authorization;
    const bearer = typeof auth === 'string' && auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (this.rejectBearer || !this.issued.has(bearer)) {
      return reply(401, googleError(401, 'UNAUTHENTICATED', 'Request had invalid authentication credentials. Expected OAuth 2 access token.'));
    }
    if (this.stall) {
      this.stalled.add(res);
      res.on('close', () => this.stalled.delete(res));
      return;
    }
    if (this.unavailable && Date.now() < this.unavailable.until) {
      const h: Record<string, string> = this.unavailable.retryAfterS === undefined ? {} : { 'retry-after': String(this.unavailable.retryAfterS) };
      return reply(503, googleError(503, 'UNAVAILABLE', 'The service is currently unavailable.', 'UNAVAILABLE'), h);
    }
    // A project this account cannot see: a bare NOT_FOUND, no FcmError detail.
    if (m[1] !== this.projectId) return reply(404, googleError(404, 'NOT_FOUND', 'Requested entity was not found.'));

    let parsed: { message?: AcceptedFcm['message']; validate_only?: boolean };
    try {
      parsed = JSON.parse(body) as typeof parsed;
    } catch {
      return reply(400, googleError(400, 'INVALID_ARGUMENT', 'Invalid JSON payload received.'));
    }
    const message = parsed.message;
    const invalid = (why: string) => reply(400, googleError(400, 'INVALID_ARGUMENT', why, 'INVALID_ARGUMENT'));
    if (typeof message !== 'object' || message === null) return invalid('message is required');
    const token = message.token;
    if (typeof token !== 'string' || !token || 'topic' in message || 'condition' in message) return invalid('exactly one target (token) is required');
    const hook = this.respond?.({ token, message });
    if (hook) return reply(hook.status, hook.body, hook.headers);
    const data = message.data ?? {};
    if (typeof data !== 'object' || Object.values(data).some((v) => typeof v !== 'string')) return invalid('data values must be strings');
    const reserved = Object.keys(data).find((k) => RESERVED_DATA_KEY.test(k));
    if (reserved) return invalid(`Invalid data payload key: ${reserved}`);
    if (Buffer.byteLength(JSON.stringify(data)) > 4096) return invalid('Message is too big');
    const android = (message.android ?? {}) as { priority?: unknown; ttl?: unknown; collapse_key?: unknown };
    if (android.priority !== undefined && !/^(high|normal)$/i.test(String(android.priority))) return invalid('Invalid value at android.priority');
    if (android.ttl !== undefined) {
      const t = /^(\d+)(\.\d{1,9})?s$/.exec(String(android.ttl));
      if (!t || Number(t[1]) > 28 * 24 * 3600) return invalid('Invalid value at android.ttl');
    }
    if (android.collapse_key !== undefined && typeof android.collapse_key !== 'string') return invalid('Invalid value at android.collapse_key');

    if (token.startsWith('dead')) return reply(404, googleError(404, 'NOT_FOUND', 'Requested entity was not found.', 'UNREGISTERED'));
    if (token.startsWith('bad')) return invalid('The registration token is not a valid FCM registration token');
    if (token.startsWith('busy')) return reply(429, googleError(429, 'RESOURCE_EXHAUSTED', 'Quota exceeded for quota metric \'Send requests\'.', 'QUOTA_EXCEEDED'));
    const n = ++this.acceptedCount;
    if (this.accepted.length < (this.opts.keep ?? 10_000)) {
      this.accepted.push({ token, message, contentFree: fcmContentFree(message), validateOnly: parsed.validate_only === true, at: Date.now() });
    }
    reply(200, JSON.stringify({ name: `projects/${this.projectId}/messages/${n}` }));
  }

  /** The OAuth token endpoint: a JWT-bearer grant signed by the service account. */
  private async token(body: string, reply: (status: number, text: string) => void): Promise<void> {
    const form = new URLSearchParams(body);
    const refuse = (desc: string) => reply(400, JSON.stringify({ error: 'invalid_grant', error_description: desc }));
    if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer') return refuse('unsupported grant_type');
    if (this.rejectAssertions) return refuse('Invalid JWT Signature.');
    try {
      const { payload } = await jwtVerify(form.get('assertion') ?? '', this.account.publicKey, {
        algorithms: ['RS256'],
        issuer: this.account.clientEmail,
        audience: 'https://oauth2.googleapis.com/token',
        maxTokenAge: 3600,
      });
      const scopes = String(payload.scope ?? '').split(' ');
      if (!scopes.some((s) => SCOPES.includes(s))) return refuse('Invalid OAuth scope.');
    } catch {
      return refuse('Invalid JWT Signature.');
    }
    const accessToken = `ya29.fake-${crypto.randomBytes(16).toString('hex')}`;
    this.issued.add(accessToken);
    this.tokensIssued++;
    reply(200, JSON.stringify({ access_token: accessToken, expires_in: 3599, token_type: 'Bearer' }));
  }
}
