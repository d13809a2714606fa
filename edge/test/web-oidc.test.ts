/**
 * The web client's production sign-in (edge/web/src/oidc.ts) against a local OpenID Connect
 * provider (idp.ts) and the edge configured for it: the edge serves the provider as public config,
 * the client leaves for the provider's authorization endpoint with a PKCE S256 challenge, comes
 * back with a code, exchanges it (the provider checks the verifier), and the token it keeps is
 * accepted by the edge on HTTP and the socket; one near expiry is renewed with the refresh token.
 * The browser's `location`, `history` and `sessionStorage` are stood in for (no browser needed).
 *
 *   node --import tsx --test edge/test/web-oidc.test.ts
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { beginSignIn, claimsOf, completeSignIn, currentToken, signInConfig, type OidcConfig } from '../web/src/oidc.ts';
import { LocalIdp } from './idp.ts';
import { startSystem, type System } from './system.ts';
import { TestSocket } from './socket.ts';

const claimsFor = (user: string, device: string) => ({ sub: `acct|${user}`, uid: user, device_id: device });

/** Just enough of a browser tab for oidc.ts. */
function fakeTab(origin: string) {
  const store = new Map<string, string>();
  const tab = {
    assigned: [] as string[],
    location: {
      origin,
      pathname: '/',
      search: '',
      assign: (url: string) => void tab.assigned.push(url),
    },
    history: { replaceState: (_s: unknown, _t: string, url: string) => void ((tab.location.search = ''), (tab.location.pathname = url)) },
    sessionStorage: {
      getItem: (k: string) => store.get(k) ?? null,
      setItem: (k: string, v: string) => void store.set(k, v),
      removeItem: (k: string) => void store.delete(k),
    },
    store,
  };
  Object.assign(globalThis, { location: tab.location, history: tab.history, sessionStorage: tab.sessionStorage });
  return tab;
}

describe('web client sign-in through an OpenID Connect provider (authorization code + PKCE)', { timeout: 180_000 }, () => {
  let idp: LocalIdp;
  let sys: System;
  let oidc: OidcConfig;

  before(async () => {
    idp = await LocalIdp.start(claimsFor);
    sys = await startSystem('embedded', {
      edgeVars: {
        AUTH_JWKS_URL: idp.jwksUrl,
        AUTH_ISSUER: idp.issuer,
        AUTH_AUDIENCE: idp.audience,
        AUTH_USER_CLAIM: 'uid',
        AUTH_DEVICE_CLAIM: 'device_id',
        AUTH_OIDC_CLIENT_ID: idp.clientId,
      },
    });
  });
  after(async () => {
    await sys?.stop();
    await idp?.stop();
  });

  /** The browser follows the provider's redirect back to the app. */
  const followAuthorize = async (tab: ReturnType<typeof fakeTab>) => {
    const res = await fetch(tab.assigned.at(-1)!, { redirect: 'manual' });
    assert.equal(res.status, 302, await res.text());
    const back = new URL(res.headers.get('location')!);
    assert.equal(back.origin, sys.edgeUrl);
    tab.location.search = back.search;
  };

  it('the edge names the provider; sign-in goes through it with PKCE S256; the token it yields works on HTTP and the socket', async () => {
    const cfg = await signInConfig(sys.edgeUrl);
    assert.ok(cfg.oidc, JSON.stringify(cfg));
    oidc = cfg.oidc;
    assert.deepEqual(oidc, { issuer: idp.issuer, clientId: idp.clientId, audience: idp.audience, userClaim: 'uid', deviceClaim: 'device_id' });

    const tab = fakeTab(sys.edgeUrl);
    idp.signInAs = { user: 'olivia', device: 'web-olivia-1' };
    await beginSignIn(oidc);
    const asked = new URL(tab.assigned[0]!).searchParams;
    assert.equal(asked.get('code_challenge_method'), 'S256');
    assert.equal(asked.get('client_id'), idp.clientId);
    assert.equal(asked.get('redirect_uri'), `${sys.edgeUrl}/`);
    assert.match(asked.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
    await followAuthorize(tab);

    const who = await completeSignIn(oidc);
    assert.deepEqual(who, { user: 'olivia', device: 'web-olivia-1' });
    assert.equal(tab.location.search, '', 'the code is removed from the address bar');
    // The provider checked the verifier against the challenge (it refuses the code otherwise).
    const exchange = idp.seen.token.at(-1)!;
    assert.equal(exchange.get('grant_type'), 'authorization_code');
    assert.match(exchange.get('code_verifier')!, /^[A-Za-z0-9_-]{43}$/);

    const token = await currentToken(oidc);
    assert.equal(claimsOf(token).aud, idp.audience, 'the bearer token is the one for the edge (the access token)');
    const res = await fetch(`${sys.edgeUrl}/v1/conversations`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200, await res.text());
    const s = await TestSocket.open(sys.edgeUrl, token);
    const hello = await s.next((f) => f.t === 'hello');
    assert.equal(hello.user, 'olivia');
    assert.equal(hello.dev, 'web-olivia-1');
    await s.close();
  });

  it('a reply that does not match the request (state) is refused; a code is not exchanged twice', async () => {
    const tab = fakeTab(sys.edgeUrl);
    await beginSignIn(oidc);
    await followAuthorize(tab);
    const replayed = tab.location.search;
    tab.location.search = tab.location.search.replace(/state=[^&]*/, 'state=forged');
    await assert.rejects(completeSignIn(oidc), /state/);
    // The same code again (its request is gone): refused.
    tab.location.search = replayed;
    await assert.rejects(completeSignIn(oidc), /state|refused/);
  });

  it('a token near expiry is renewed with the refresh token, and the new one works', async () => {
    const tab = fakeTab(sys.edgeUrl);
    idp.oidcTtl = 45; // under a minute left from the start: the next currentToken renews it
    await beginSignIn(oidc);
    await followAuthorize(tab);
    await completeSignIn(oidc);
    idp.oidcTtl = 300;
    const before = idp.seen.token.length;
    const token = await currentToken(oidc);
    assert.equal(idp.seen.token.length, before + 1);
    assert.equal(idp.seen.token.at(-1)!.get('grant_type'), 'refresh_token');
    assert.ok(Number(claimsOf(token).exp) - Date.now() / 1000 > 200);
    const res = await fetch(`${sys.edgeUrl}/v1/conversations`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
  });
});
