/**
 * Sign-in settings: tokens from an identity provider (JWKS), the claims that name user and device,
 * and how live sockets learn of their token's expiry. Read and validated once with the rest of the
 * edge's configuration (config.ts spreads these fields into EdgeConfig, one field per variable, so
 * `npm run config:check` reports each).
 */

/** Variables this module reads (a subset of Env). */
export interface AuthEnv {
  AUTH_JWKS_URL?: string;
  AUTH_ISSUER?: string;
  AUTH_AUDIENCE?: string;
  AUTH_USER_CLAIM?: string;
  AUTH_DEVICE_CLAIM?: string;
  AUTH_LEEWAY_SECONDS?: string;
  AUTH_JWKS_COOLDOWN_SECONDS?: string;
  AUTH_REFRESH_NOTICE_SECONDS?: string;
  AUTH_REFRESH_GRACE_SECONDS?: string;
  AUTH_OIDC_CLIENT_ID?: string;
}

export interface AuthConfig {
  /**
   * The identity provider's JWKS (`https://idp.example.com/.well-known/jwks.json`): RS256, ES256
   * and EdDSA tokens are verified against its keys. Empty: only HS256 tokens (AUTH_SECRET) sign in.
   */
  authJwksUrl: string;
  /** Required with AUTH_JWKS_URL: the `iss` every provider token must carry. */
  authIssuer: string;
  /** Required with AUTH_JWKS_URL: an `aud` every provider token must carry (this deployment's client or API id). */
  authAudience: string;
  /** The claim naming the user in provider tokens. Default `sub`. */
  authUserClaim: string;
  /** The claim naming the device in provider tokens. Default `dev`. */
  authDeviceClaim: string;
  /** Clock skew allowed on `exp`, `nbf` and `iat`. Default 30 s. */
  authLeewaySeconds: number;
  /**
   * At most one JWKS fetch per this long for a key id the cached set lacks, so made-up key ids
   * cannot make the edge hammer the provider. Default 30 s (the set is also refreshed every 10 min).
   */
  authJwksCooldownSeconds: number;
  /** A live socket is asked for a new token (`reauth`) this long before its token expires. Default 60 s. */
  authRefreshNoticeSeconds: number;
  /** A socket whose token expired is closed (4001) this long after the expiry unless refreshed. Default 30 s. */
  authRefreshGraceSeconds: number;
  /** The web client's OpenID Connect client id (served as public config; the issuer is AUTH_ISSUER). Empty: development sign-in only. */
  authOidcClientId: string;
}

export type ConfigErrorCtor = new (message: string) => Error;

export function authConfig(env: AuthEnv, ConfigError: ConfigErrorCtor): AuthConfig {
  const int = (name: keyof AuthEnv, dflt: number, min: number, max: number): number => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name}: expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
    return n;
  };
  const claim = (name: keyof AuthEnv, dflt: string): string => {
    const v = env[name];
    if (v === undefined || v === '') return dflt;
    if (!/^[A-Za-z0-9_:./-]{1,64}$/.test(v)) throw new ConfigError(`${name}: expected a claim name of 1-64 of [A-Za-z0-9_:./-], got ${JSON.stringify(v)}`);
    return v;
  };
  const jwks = env.AUTH_JWKS_URL ?? '';
  let authJwksUrl = '';
  if (jwks !== '') {
    let u: URL;
    try {
      u = new URL(jwks);
    } catch {
      throw new ConfigError(`AUTH_JWKS_URL: expected an http(s) URL, got ${JSON.stringify(jwks)}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ConfigError(`AUTH_JWKS_URL: expected an http(s) URL, got ${JSON.stringify(jwks)}`);
    // Plain http only to a loopback provider (development, tests): keys fetched in the clear could be swapped.
    if (u.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname)) throw new ConfigError(`AUTH_JWKS_URL: expected https (http only for a loopback provider), got ${JSON.stringify(jwks)}`);
    authJwksUrl = u.href;
  }
  const authIssuer = env.AUTH_ISSUER ?? '';
  const authAudience = env.AUTH_AUDIENCE ?? '';
  if (authJwksUrl !== '' && (authIssuer === '' || authAudience === '')) {
    throw new ConfigError(`AUTH_JWKS_URL is set: AUTH_ISSUER and AUTH_AUDIENCE are required with it (${authIssuer === '' ? 'AUTH_ISSUER' : 'AUTH_AUDIENCE'} is empty)`);
  }
  const authOidcClientId = env.AUTH_OIDC_CLIENT_ID ?? '';
  if (authOidcClientId !== '' && authJwksUrl === '') throw new ConfigError('AUTH_OIDC_CLIENT_ID: needs AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE (the edge must verify the tokens the web client signs in with)');
  return {
    authJwksUrl,
    authIssuer,
    authAudience,
    authUserClaim: claim('AUTH_USER_CLAIM', 'sub'),
    authDeviceClaim: claim('AUTH_DEVICE_CLAIM', 'dev'),
    authLeewaySeconds: int('AUTH_LEEWAY_SECONDS', 30, 0, 300),
    authJwksCooldownSeconds: int('AUTH_JWKS_COOLDOWN_SECONDS', 30, 1, 3600),
    authRefreshNoticeSeconds: int('AUTH_REFRESH_NOTICE_SECONDS', 60, 1, 3600),
    authRefreshGraceSeconds: int('AUTH_REFRESH_GRACE_SECONDS', 30, 0, 3600),
    authOidcClientId,
  };
}
