/**
 * Production sign-in through the identity provider the edge names (`GET /v1/auth/config`): the
 * OpenID Connect authorization-code flow with PKCE (S256). The code is exchanged at the
 * provider's token endpoint from the browser (a public client, no secret); the token whose `aud`
 * holds the edge's audience (the access token, or the ID token when the audience is this client)
 * is the bearer token for every request and the socket. Tokens live in this tab's
 * sessionStorage; a provider that hands out a refresh token keeps the tab signed in past expiry.
 */

export interface OidcConfig {
  issuer: string;
  clientId: string;
  audience: string;
  userClaim: string;
  deviceClaim: string;
}

export interface SignInConfig {
  devAuth: boolean;
  oidc: OidcConfig | null;
}

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
}

interface Stored {
  token: string;
  exp: number;
  refreshToken?: string;
}

const PENDING = 'switchboard.oidc.pending';
const TOKENS = 'switchboard.oidc.tokens';
/** A stored token is used while it has more than this left (s): the SDK asks 30 s ahead of expiry, and gets a new one then. */
const MIN_LEFT_S = 60;

export async function signInConfig(base: string): Promise<SignInConfig> {
  const res = await fetch(`${base}/v1/auth/config`);
  if (!res.ok) return { devAuth: true, oidc: null };
  return (await res.json()) as SignInConfig;
}

async function discover(issuer: string): Promise<Discovery> {
  const res = await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`);
  if (!res.ok) throw new Error(`the identity provider's configuration could not be read (HTTP ${res.status})`);
  const d = (await res.json()) as Partial<Discovery>;
  if (typeof d.authorization_endpoint !== 'string' || typeof d.token_endpoint !== 'string') throw new Error('the identity provider names no authorization or token endpoint');
  return d as Discovery;
}

export function base64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** A PKCE verifier (43 characters) and its S256 challenge (RFC 7636). */
export async function pkcePair(): Promise<{ verifier: string; challenge: string }> {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  return { verifier, challenge };
}

/** A JWT's claims, unverified (the edge verifies; this only reads who signed in). */
export function claimsOf(token: string): Record<string, unknown> {
  const part = token.split('.')[1] ?? '';
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)))) as Record<string, unknown>;
}

function redirectUri(): string {
  return `${location.origin}/`;
}

/** Leaves for the provider's sign-in page. */
export async function beginSignIn(cfg: OidcConfig): Promise<void> {
  const d = await discover(cfg.issuer);
  const { verifier, challenge } = await pkcePair();
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const u = new URL(d.authorization_endpoint);
  u.search = new URLSearchParams({
    response_type: 'code',
    client_id: cfg.clientId,
    redirect_uri: redirectUri(),
    scope: 'openid profile offline_access',
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state,
    ...(cfg.audience !== cfg.clientId ? { audience: cfg.audience } : {}),
  }).toString();
  location.assign(u.href);
}

/**
 * Back from the provider (`?code=…&state=…`): exchanges the code and returns who signed in, or
 * null when this page load is not a return from the provider. The query is removed from the URL.
 */
export async function completeSignIn(cfg: OidcConfig): Promise<{ user: string; device: string } | null> {
  const params = new URLSearchParams(location.search);
  const code = params.get('code');
  const error = params.get('error');
  if (!code && !error) return null;
  history.replaceState(null, '', location.pathname);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? 'null') as { verifier: string; state: string } | null;
  sessionStorage.removeItem(PENDING);
  if (error) throw new Error(`sign-in refused by the identity provider: ${error}`);
  if (!pending || params.get('state') !== pending.state) throw new Error('sign-in failed: the reply does not match the request (state); try again');
  const d = await discover(cfg.issuer);
  const stored = await tokenRequest(d, cfg, { grant_type: 'authorization_code', code: code!, redirect_uri: redirectUri(), code_verifier: pending.verifier });
  return whoIs(cfg, stored.token);
}

function whoIs(cfg: OidcConfig, token: string): { user: string; device: string } {
  const c = claimsOf(token);
  const user = c[cfg.userClaim];
  const device = c[cfg.deviceClaim];
  if (typeof user !== 'string' || typeof device !== 'string') throw new Error(`the identity provider's token has no ${typeof user !== 'string' ? cfg.userClaim : cfg.deviceClaim} claim`);
  return { user, device };
}

async function tokenRequest(d: Discovery, cfg: OidcConfig, form: Record<string, string>): Promise<Stored> {
  const res = await fetch(d.token_endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ client_id: cfg.clientId, ...form }) });
  if (!res.ok) throw new Error(`the identity provider refused the sign-in (HTTP ${res.status})`);
  const r = (await res.json()) as { access_token?: string; id_token?: string; refresh_token?: string };
  // The bearer token is the one meant for the edge: its `aud` holds the edge's audience.
  const forEdge = [r.access_token, r.id_token].find((t) => {
    if (!t || t.split('.').length !== 3) return false;
    const aud = claimsOf(t).aud;
    return aud === cfg.audience || (Array.isArray(aud) && aud.includes(cfg.audience));
  });
  if (!forEdge) throw new Error(`the identity provider returned no token for audience ${cfg.audience}`);
  const exp = Number(claimsOf(forEdge).exp);
  const stored: Stored = { token: forEdge, exp, ...(r.refresh_token ? { refreshToken: r.refresh_token } : (loadTokens()?.refreshToken ? { refreshToken: loadTokens()!.refreshToken! } : {})) };
  sessionStorage.setItem(TOKENS, JSON.stringify(stored));
  return stored;
}

function loadTokens(): Stored | null {
  try {
    return JSON.parse(sessionStorage.getItem(TOKENS) ?? 'null') as Stored | null;
  } catch {
    return null;
  }
}

/** Signed in through the provider in this tab (a token is stored). */
export function hasTokens(): boolean {
  return loadTokens() !== null;
}

export function clearTokens(): void {
  sessionStorage.removeItem(TOKENS);
}

/**
 * The bearer token: the stored one while it has time left, else a new one from the refresh
 * token. Without either the tab must sign in again (the error says so).
 */
export async function currentToken(cfg: OidcConfig): Promise<string> {
  const t = loadTokens();
  if (!t) throw new Error('signed out: sign in again');
  if (t.exp - Date.now() / 1000 > MIN_LEFT_S) return t.token;
  if (!t.refreshToken) throw new Error('the session expired: sign in again');
  return (await tokenRequest(await discover(cfg.issuer), cfg, { grant_type: 'refresh_token', refresh_token: t.refreshToken })).token;
}
