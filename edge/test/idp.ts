/**
 * A local identity provider for tests, on loopback: `GET /.well-known/jwks.json` serves its
 * current public keys (and counts the fetches), `POST /token` issues tokens as a provider's token
 * endpoint would (form fields `user`, `device`, optional `ttl`), and `sign` makes any token a test
 * needs (wrong issuer, expired, a key the provider never published …). Keys are RS256, ES256 and
 * EdDSA (Ed25519), made with jose; `rotate` publishes a new key set.
 *
 * It is also a small OpenID Connect provider for the web client's sign-in: discovery,
 * `GET /authorize` (signs in `signInAs` at once and redirects back with a code; PKCE S256
 * required) and the token endpoint's `authorization_code` (the verifier checked against the
 * challenge) and `refresh_token` grants. CORS is open, as a provider's token endpoint is to SPAs.
 */
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export type Alg = 'RS256' | 'ES256' | 'EdDSA';

export interface IdpKey {
  kid: string;
  alg: Alg;
  privateKey: CryptoKey;
  jwk: JWK;
}

export async function newKey(alg: Alg, kid = `${alg.toLowerCase()}-${crypto.randomBytes(4).toString('hex')}`): Promise<IdpKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, alg === 'EdDSA' ? { crv: 'Ed25519' } : {});
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, jwk };
}

export interface SignOptions {
  key?: IdpKey;
  iss?: string;
  aud?: string | string[];
  /** Seconds from now; negative: already expired. Default 300. */
  expIn?: number;
  /** Seconds from now for `nbf` (omitted by default). */
  nbfIn?: number;
  /** `iat` in Unix seconds (default now). */
  iat?: number;
  /** Extra claims (the user and device claims go here). */
  claims?: Record<string, unknown>;
  /** A `kid` in the header other than the key's own. */
  kid?: string;
}

export class LocalIdp {
  readonly issuer: string;
  readonly audience = 'switchboard-test';
  /** Published keys; the first signs by default. */
  keys: IdpKey[] = [];
  jwksFetches = 0;
  /** OIDC: who `/authorize` signs in, and the client id it serves. */
  signInAs = { user: 'oidc-user', device: 'oidc-device' };
  readonly clientId = 'switchboard-web';
  /** OIDC requests seen, for assertions. */
  readonly seen: { authorize: URLSearchParams[]; token: URLSearchParams[] } = { authorize: [], token: [] };
  private readonly codes = new Map<string, { challenge: string; redirectUri: string; user: string; device: string }>();
  private readonly refreshTokens = new Map<string, { user: string; device: string }>();
  /** Lifetime of tokens the OIDC token endpoint issues (s). */
  oidcTtl = 300;

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    private readonly claimsFor: (user: string, device: string) => Record<string, unknown>,
  ) {
    this.issuer = url;
  }

  static async start(claimsFor: (user: string, device: string) => Record<string, unknown>): Promise<LocalIdp> {
    let idp: LocalIdp | null = null;
    const server = http.createServer((req, res) => void idp!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    idp = new LocalIdp(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, claimsFor);
    idp.keys = [await newKey('RS256'), await newKey('ES256'), await newKey('EdDSA')];
    return idp;
  }

  get jwksUrl(): string {
    return `${this.url}/.well-known/jwks.json`;
  }

  key(alg: Alg): IdpKey {
    const k = this.keys.find((x) => x.alg === alg);
    if (!k) throw new Error(`no published ${alg} key`);
    return k;
  }

  /** Publishes `keys` in place of the current set (a rotation at the provider). */
  rotate(keys: IdpKey[]): void {
    this.keys = keys;
  }

  async sign(o: SignOptions = {}): Promise<string> {
    const key = o.key ?? this.keys[0]!;
    const now = Math.floor(Date.now() / 1000);
    const payload: JWTPayload = { ...o.claims, iat: o.iat ?? now, exp: now + (o.expIn ?? 300) };
    if (o.nbfIn !== undefined) payload.nbf = now + o.nbfIn;
    return new SignJWT(payload)
      .setProtectedHeader({ alg: key.alg, kid: o.kid ?? key.kid, typ: 'JWT' })
      .setIssuer(o.iss ?? this.issuer)
      .setAudience(o.aud ?? this.audience)
      .sign(key.privateKey);
  }

  /** A token for `user`'s `device` from the provider's default key, with its claims. */
  token(user: string, device: string, o: Omit<SignOptions, 'claims'> = {}): Promise<string> {
    return this.sign({ ...o, claims: this.claimsFor(user, device) });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    res.setHeader('access-control-allow-origin', '*');
    if (req.method === 'OPTIONS') {
      res.writeHead(204, { 'access-control-allow-headers': 'content-type', 'access-control-allow-methods': 'GET, POST' }).end();
      return;
    }
    if (req.method === 'GET' && url.pathname === '/.well-known/openid-configuration') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ issuer: this.issuer, authorization_endpoint: `${this.url}/authorize`, token_endpoint: `${this.url}/oauth/token`, jwks_uri: this.jwksUrl, code_challenge_methods_supported: ['S256'] }));
      return;
    }
    if (req.method === 'GET' && url.pathname === '/authorize') return this.authorize(url.searchParams, res);
    if (req.method === 'POST' && url.pathname === '/oauth/token') {
      let body = '';
      for await (const chunk of req) body += chunk;
      return this.oauthToken(new URLSearchParams(body), res);
    }
    if (req.method === 'GET' && url.pathname === '/.well-known/jwks.json') {
      this.jwksFetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: this.keys.map((k) => k.jwk) }));
      return;
    }
    if (req.method === 'POST' && url.pathname === '/token') {
      let body = '';
      for await (const chunk of req) body += chunk;
      const form = new URLSearchParams(body);
      const user = form.get('user');
      const device = form.get('device');
      if (!user || !device) {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: 'invalid_request' }));
        return;
      }
      const ttl = Number(form.get('ttl') ?? 300);
      const token = await this.token(user, device, { expIn: ttl });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: token, id_token: token, token_type: 'Bearer', expires_in: ttl }));
      return;
    }
    res.writeHead(404).end();
  }

  private authorize(q: URLSearchParams, res: http.ServerResponse): void {
    this.seen.authorize.push(q);
    const redirectUri = q.get('redirect_uri');
    if (q.get('response_type') !== 'code' || q.get('client_id') !== this.clientId || !redirectUri || q.get('code_challenge_method') !== 'S256' || !q.get('code_challenge')) {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_request' }));
      return;
    }
    const code = crypto.randomBytes(16).toString('base64url');
    this.codes.set(code, { challenge: q.get('code_challenge')!, redirectUri, ...this.signInAs });
    const back = new URL(redirectUri);
    back.searchParams.set('code', code);
    back.searchParams.set('state', q.get('state') ?? '');
    res.writeHead(302, { location: back.href }).end();
  }

  private async oauthToken(form: URLSearchParams, res: http.ServerResponse): Promise<void> {
    this.seen.token.push(form);
    const fail = (error: string) => void res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error }));
    if (form.get('client_id') !== this.clientId) return fail('invalid_client');
    let who: { user: string; device: string };
    if (form.get('grant_type') === 'authorization_code') {
      const c = this.codes.get(form.get('code') ?? '');
      this.codes.delete(form.get('code') ?? '');
      if (!c || c.redirectUri !== form.get('redirect_uri')) return fail('invalid_grant');
      const verifier = form.get('code_verifier') ?? '';
      if (crypto.createHash('sha256').update(verifier).digest('base64url') !== c.challenge) return fail('invalid_grant');
      who = c;
    } else if (form.get('grant_type') === 'refresh_token') {
      const r = this.refreshTokens.get(form.get('refresh_token') ?? '');
      if (!r) return fail('invalid_grant');
      who = r;
    } else return fail('unsupported_grant_type');
    const refresh = crypto.randomBytes(16).toString('base64url');
    this.refreshTokens.set(refresh, { user: who.user, device: who.device });
    const claims = this.claimsFor(who.user, who.device);
    // The access token is for the API (the edge's audience), the ID token for this client.
    const access = await this.sign({ claims, expIn: this.oidcTtl });
    const id = await this.sign({ claims, expIn: this.oidcTtl, aud: this.clientId });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: access, id_token: id, refresh_token: refresh, token_type: 'Bearer', expires_in: this.oidcTtl }));
  }

  /** A token from the provider's token endpoint (over HTTP, as a client gets one). */
  async fetchToken(user: string, device: string, ttl = 300): Promise<string> {
    const res = await fetch(`${this.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ user, device, ttl: String(ttl) }) });
    if (!res.ok) throw new Error(`idp token: HTTP ${res.status}`);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
