import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authConfig, type AuthEnv } from '../../src/auth/auth-config.ts';

class ConfigError extends Error {
  override name = 'ConfigError';
}
const read = (env: AuthEnv) => authConfig(env, ConfigError);
const provider = { AUTH_JWKS_URL: 'https://idp.example.com/.well-known/jwks.json', AUTH_ISSUER: 'https://idp.example.com/', AUTH_AUDIENCE: 'switchboard' };

describe('sign-in configuration', () => {
  it('defaults: no provider (HS256 only), claims sub and dev, 30 s leeway and cooldown, reauth 60 s before expiry, 30 s grace', () => {
    assert.deepEqual(read({}), {
      authJwksUrl: '',
      authIssuer: '',
      authAudience: '',
      authUserClaim: 'sub',
      authDeviceClaim: 'dev',
      authLeewaySeconds: 30,
      authJwksCooldownSeconds: 30,
      authRefreshNoticeSeconds: 60,
      authRefreshGraceSeconds: 30,
      authOidcClientId: '',
    });
  });

  it('a provider with issuer and audience, and custom claims', () => {
    const c = read({ ...provider, AUTH_USER_CLAIM: 'https://example.com/uid', AUTH_DEVICE_CLAIM: 'device_id' });
    assert.equal(c.authJwksUrl, provider.AUTH_JWKS_URL);
    assert.equal(c.authUserClaim, 'https://example.com/uid');
    assert.equal(c.authDeviceClaim, 'device_id');
  });

  it('refuses a bad URL, plain http to a remote host, and a JWKS URL without issuer or audience, naming the variable', () => {
    const bad: [AuthEnv, RegExp][] = [
      [{ ...provider, AUTH_JWKS_URL: 'idp.example.com/jwks' }, /^AUTH_JWKS_URL: expected an http\(s\) URL/],
      [{ ...provider, AUTH_JWKS_URL: 'ftp://idp.example.com/jwks' }, /^AUTH_JWKS_URL: expected an http\(s\) URL/],
      [{ ...provider, AUTH_JWKS_URL: 'http://idp.example.com/jwks' }, /^AUTH_JWKS_URL: expected https/],
      [{ ...provider, AUTH_ISSUER: '' }, /AUTH_ISSUER and AUTH_AUDIENCE are required .*AUTH_ISSUER is empty/],
      [{ AUTH_JWKS_URL: provider.AUTH_JWKS_URL, AUTH_ISSUER: provider.AUTH_ISSUER }, /AUTH_AUDIENCE is empty/],
      [{ ...provider, AUTH_USER_CLAIM: 'has space' }, /^AUTH_USER_CLAIM: expected a claim name/],
      [{ ...provider, AUTH_LEEWAY_SECONDS: '-1' }, /^AUTH_LEEWAY_SECONDS: expected an integer in 0..300/],
      [{ ...provider, AUTH_JWKS_COOLDOWN_SECONDS: '0' }, /^AUTH_JWKS_COOLDOWN_SECONDS: expected an integer/],
      [{ AUTH_OIDC_CLIENT_ID: 'web' }, /^AUTH_OIDC_CLIENT_ID: needs AUTH_JWKS_URL/],
    ];
    for (const [env, message] of bad) assert.throws(() => read(env), (err: Error) => err instanceof ConfigError && message.test(err.message), JSON.stringify(env));
  });

  it('plain http is allowed to a loopback provider (development, tests)', () => {
    assert.equal(read({ ...provider, AUTH_JWKS_URL: 'http://127.0.0.1:9999/.well-known/jwks.json' }).authJwksUrl, 'http://127.0.0.1:9999/.well-known/jwks.json');
  });
});
