import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import { DeviceId, ProtocolError, UserId } from '@switchboard/protocol';
import { config, type EdgeConfig, type Env } from '../config.ts';
import { errorFields, log } from '../log.ts';
import { revokedBefore } from './revocations.ts';

/** A verified token: who it names, and the times the edge acts on (Unix seconds). */
export interface VerifiedToken {
  user: string;
  device: string;
  exp: number;
  /** Issued at; null when the token carries none (then any revocation of the user refuses it). */
  iat: number | null;
  /** Signed with the shared secret (an app's own backend, dev tokens) or by the identity provider. */
  kind: 'secret' | 'provider';
}

/** Algorithms accepted from the identity provider (workerd's WebCrypto: RSASSA-PKCS1-v1_5, ECDSA P-256, Ed25519). */
export const PROVIDER_ALGS = ['RS256', 'ES256', 'EdDSA', 'Ed25519'];

type KeySet = ReturnType<typeof createRemoteJWKSet>;
/** One cached key set per JWKS URL per isolate, shared by every verifier of it. */
const keySets = new Map<string, KeySet>();

/**
 * Verifies device tokens, built once per isolate from configuration (`verifierFor`), used by
 * every HTTP route, the WebSocket upgrade and a live socket's `refresh`.
 *
 * - HS256 with AUTH_SECRET: the app's own backend (and `POST /v1/dev/token`); claims `sub`, `dev`.
 * - RS256 / ES256 / EdDSA from the identity provider: keys from AUTH_JWKS_URL (cached, fetched
 *   again for an unknown `kid` at most once per AUTH_JWKS_COOLDOWN_SECONDS: jose's remote key
 *   set), `iss` and `aud` checked; the user and device claims are configurable.
 *
 * Both need `exp`; `exp`, `nbf` and `iat` allow AUTH_LEEWAY_SECONDS of skew. A token issued before
 * its user's revocation time is refused. Every refusal is `unauthorized` with a short reason; an
 * unreachable provider or revocation store is `unavailable`.
 */
export class TokenVerifier {
  private readonly secret: Uint8Array;
  private readonly keys: KeySet | null;

  constructor(
    private readonly cfg: EdgeConfig,
    private readonly revocations: Env['REVOCATIONS'],
  ) {
    this.secret = new TextEncoder().encode(cfg.authSecret);
    this.keys = cfg.authJwksUrl === '' ? null : keySet(cfg);
  }

  async verify(token: string | null | undefined): Promise<VerifiedToken> {
    if (!token) throw new ProtocolError('unauthorized', 'missing token');
    let alg: string | undefined;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new ProtocolError('unauthorized', 'malformed token');
    }
    const v = alg === 'HS256' ? await this.secretToken(token) : await this.providerToken(token, alg);
    await this.checkRevocation(v);
    return v;
  }

  private async secretToken(token: string): Promise<VerifiedToken> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.secret, { algorithms: ['HS256'], clockTolerance: this.cfg.authLeewaySeconds, requiredClaims: ['exp'] }));
    } catch (err) {
      throw refusal(err);
    }
    return principal(payload, 'sub', 'dev', 'secret');
  }

  private async providerToken(token: string, alg: string | undefined): Promise<VerifiedToken> {
    if (!this.keys) throw new ProtocolError('unauthorized', `tokens signed with ${alg ?? 'no algorithm'} are not accepted here`);
    if (!alg || !PROVIDER_ALGS.includes(alg)) throw new ProtocolError('unauthorized', `algorithm ${JSON.stringify(alg ?? null).slice(0, 20)} is not accepted`);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keys, {
        algorithms: PROVIDER_ALGS,
        issuer: this.cfg.authIssuer,
        audience: this.cfg.authAudience,
        clockTolerance: this.cfg.authLeewaySeconds,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      throw refusal(err);
    }
    return principal(payload, this.cfg.authUserClaim, this.cfg.authDeviceClaim, 'provider');
  }

  private async checkRevocation(v: VerifiedToken): Promise<void> {
    let before: number;
    try {
      before = await revokedBefore(this.revocations, v.user);
    } catch (err) {
      log('warn', 'revocation store unavailable', { user: v.user, ...errorFields(err) });
      throw new ProtocolError('unavailable', 'sign-in is unavailable; retry later');
    }
    if (before > 0 && (v.iat === null || v.iat < before)) throw new ProtocolError('unauthorized', 'token revoked');
  }
}

function keySet(cfg: EdgeConfig): KeySet {
  const key = `${cfg.authJwksUrl}\n${cfg.authJwksCooldownSeconds}`;
  let ks = keySets.get(key);
  if (!ks) {
    ks = createRemoteJWKSet(new URL(cfg.authJwksUrl), { cooldownDuration: cfg.authJwksCooldownSeconds * 1000, cacheMaxAge: 600_000, timeoutDuration: 5000 });
    keySets.set(key, ks);
  }
  return ks;
}

function principal(payload: JWTPayload, userClaim: string, deviceClaim: string, kind: VerifiedToken['kind']): VerifiedToken {
  const user = UserId.safeParse(payload[userClaim]);
  const device = DeviceId.safeParse(payload[deviceClaim]);
  if (!user.success) throw new ProtocolError('unauthorized', `token claim ${userClaim} names no valid user (1-64 of [A-Za-z0-9._-])`);
  if (!device.success) throw new ProtocolError('unauthorized', `token claim ${deviceClaim} names no valid device (1-64 of [A-Za-z0-9._-])`);
  return { user: user.data, device: device.data, exp: payload.exp!, iat: typeof payload.iat === 'number' ? payload.iat : null, kind };
}

/** A verification failure as the typed error a client sees (never a library's message or stack). */
function refusal(err: unknown): ProtocolError {
  if (err instanceof errors.JWTExpired) return new ProtocolError('unauthorized', 'token expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    const reason = { nbf: 'token not yet valid', iss: 'token issuer not accepted', aud: 'token audience not accepted', exp: 'token has no valid expiry', iat: 'token issued-at invalid' }[err.claim];
    return new ProtocolError('unauthorized', reason ?? `token claim ${err.claim.slice(0, 32)} invalid`);
  }
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) return new ProtocolError('unauthorized', 'token signed by an unknown key');
  if (err instanceof errors.JWSSignatureVerificationFailed) return new ProtocolError('unauthorized', 'token signature invalid');
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || !(err instanceof errors.JOSEError)) {
    // The provider's keys could not be read (unreachable, timed out, not a key set): not the token's fault.
    log('warn', 'identity provider keys unavailable', errorFields(err));
    return new ProtocolError('unavailable', 'sign-in is unavailable; retry later');
  }
  return new ProtocolError('unauthorized', 'invalid token');
}

const verifiers = new WeakMap<object, TokenVerifier>();

/** This isolate's verifier for `env` (built on first use; configuration is validated then). */
export function verifierFor(env: Env): TokenVerifier {
  let v = verifiers.get(env);
  if (!v) {
    v = new TokenVerifier(config(env), env.REVOCATIONS);
    verifiers.set(env, v);
  }
  return v;
}
