import { Hono } from 'hono';
import { config, type Env } from '../config.ts';

/** What the web client needs to sign in: public, never a secret. */
export interface SignInConfig {
  /** `POST /v1/dev/token` is on (development). */
  devAuth: boolean;
  /** OpenID Connect sign-in (authorization code + PKCE), when AUTH_OIDC_CLIENT_ID is set. */
  oidc: { issuer: string; clientId: string; audience: string; userClaim: string; deviceClaim: string } | null;
}

export const publicConfigRoutes = new Hono<{ Bindings: Env }>();

/** `GET /v1/auth/config`: how the web client signs in here. */
publicConfigRoutes.get('/v1/auth/config', (c) => {
  const cfg = config(c.env);
  const body: SignInConfig = {
    devAuth: cfg.devAuth,
    oidc: cfg.authOidcClientId === '' ? null : { issuer: cfg.authIssuer, clientId: cfg.authOidcClientId, audience: cfg.authAudience, userClaim: cfg.authUserClaim, deviceClaim: cfg.authDeviceClaim },
  };
  return c.json(body, 200, { 'cache-control': 'no-store' });
});
