/**
 * Sign-in from an identity provider (the acceptance of "Tokens from an identity provider"): a
 * local provider on loopback (idp.ts) and the edge configured with its JWKS. Tokens it issues are
 * accepted on HTTP routes and on the WebSocket upgrade; wrong issuer, audience, key, expired and
 * not-yet-valid ones are refused; a key rotation is picked up while made-up key ids cannot make
 * the edge fetch the key set more than once per cooldown; revocation closes sockets with 4001 and
 * refuses old tokens (also after an edge restart) while new ones work; a live socket's `refresh`
 * extends it, and one without is closed with 4001.
 *
 *   node --import tsx --test edge/test/auth-idp.test.ts
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { CLOSE_CODES, signRequest } from '@switchboard/protocol';
import { SwitchboardClient, type SocketLike } from '@switchboard/protocol/client';
import { LocalIdp, newKey } from './idp.ts';
import { startSystem, type System } from './system.ts';
import { TestSocket, token as devToken } from './socket.ts';

/** The provider's claims: `sub` is its own account id (not a valid user id here), `uid` and `device_id` name user and device. */
const claimsFor = (user: string, device: string) => ({ sub: `acct|${user}`, uid: user, device_id: device });
const COOLDOWN_S = 2;

describe('tokens from an identity provider', { timeout: 300_000 }, () => {
  let idp: LocalIdp;
  let sys: System;
  const sockets: TestSocket[] = [];

  before(async () => {
    idp = await LocalIdp.start(claimsFor);
    sys = await startSystem('embedded', {
      edgeVars: {
        AUTH_JWKS_URL: idp.jwksUrl,
        AUTH_ISSUER: idp.issuer,
        AUTH_AUDIENCE: idp.audience,
        AUTH_USER_CLAIM: 'uid',
        AUTH_DEVICE_CLAIM: 'device_id',
        AUTH_LEEWAY_SECONDS: '0',
        AUTH_JWKS_COOLDOWN_SECONDS: String(COOLDOWN_S),
        AUTH_REFRESH_NOTICE_SECONDS: '2',
        AUTH_REFRESH_GRACE_SECONDS: '1',
      },
    });
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await sys?.stop();
    await idp?.stop();
  });

  /** An authenticated HTTP route: the caller's conversation list. */
  const list = async (tok: string) => {
    const res = await fetch(`${sys.edgeUrl}/v1/conversations`, { headers: { authorization: `Bearer ${tok}` } });
    const body = (await res.json()) as { error?: { code: string; message: string } };
    return { status: res.status, body };
  };
  const open = async (tok: string) => {
    const s = await TestSocket.open(sys.edgeUrl, tok);
    sockets.push(s);
    return s;
  };
  /** The upgrade is refused with HTTP `status` (no socket, no hello). */
  const upgradeRefused = async (tok: string, status = 401) => {
    const err = await TestSocket.open(sys.edgeUrl, tok).then(
      (s) => (sockets.push(s), null),
      (e: { status?: number }) => e,
    );
    assert.ok(err, 'the upgrade should have been refused');
    assert.equal(err.status, status);
  };
  const closedWith = async (s: TestSocket, timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const closed = s.closeReceived();
      if (closed) return closed;
      if (Date.now() > deadline) throw new Error(`socket still open after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const revoke = async (user: string) => {
    const path = `/internal/users/${user}/revoke-tokens`;
    const res = await fetch(`${sys.edgeUrl}${path}`, { method: 'POST', headers: await signRequest(sys.internalSecret, 'POST', path, ''), body: '' });
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as { before: number; closed: number };
  };

  it('accepts RS256, ES256 and EdDSA tokens from the provider on HTTP routes and the WebSocket upgrade', async () => {
    for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
      const tok = await idp.token(`alice-${alg}`, 'phone', { key: idp.key(alg) });
      const r = await list(tok);
      assert.equal(r.status, 200, `${alg}: ${JSON.stringify(r.body)}`);
      const s = await open(tok);
      const hello = await s.next((f) => f.t === 'hello');
      assert.equal(hello.user, `alice-${alg}`);
      assert.equal(hello.dev, 'phone');
      assert.equal(typeof hello.exp, 'number');
    }
    // From the provider's token endpoint, as a client would get one.
    const fetched = await idp.fetchToken('alice-endpoint', 'laptop');
    assert.equal((await list(fetched)).status, 200);
    await open(fetched);
  });

  it('keeps accepting the shared secret’s HS256 tokens (an app’s backend, development)', async () => {
    const tok = await devToken(sys.edgeUrl, 'hs-user', 'd1');
    assert.equal((await list(tok)).status, 200);
    await open(tok);
  });

  it('refuses wrong issuer, wrong audience, an unknown key, expired and not-yet-valid tokens: 401 unauthorized, upgrade refused', async () => {
    const stranger = await newKey('ES256', 'never-published');
    const bad: Record<string, Promise<string>> = {
      'wrong issuer': idp.sign({ iss: 'https://evil.example', claims: claimsFor('mallory', 'd') }),
      'wrong audience': idp.sign({ aud: 'another-app', claims: claimsFor('mallory', 'd') }),
      'unknown key': idp.sign({ key: stranger, claims: claimsFor('mallory', 'd') }),
      'published kid, other key': idp.sign({ key: stranger, kid: idp.key('ES256').kid, claims: claimsFor('mallory', 'd') }),
      expired: idp.sign({ expIn: -60, iat: Math.floor(Date.now() / 1000) - 600, claims: claimsFor('mallory', 'd') }),
      'not yet valid': idp.sign({ nbfIn: 120, claims: claimsFor('mallory', 'd') }),
      'no device claim': idp.sign({ claims: { uid: 'mallory' } }),
      'provider token signed as HS256 by someone without the secret': Promise.resolve(
        // header {"alg":"HS256"} . payload . garbage
        `${Buffer.from('{"alg":"HS256","typ":"JWT"}').toString('base64url')}.${Buffer.from(JSON.stringify({ uid: 'mallory', sub: 'mallory', dev: 'd', exp: 9e9 })).toString('base64url')}.AAAA`,
      ),
      'alg none': Promise.resolve(`${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 'mallory', dev: 'd', exp: 9e9 })).toString('base64url')}.`),
      garbage: Promise.resolve('not-a-jwt'),
    };
    for (const [why, p] of Object.entries(bad)) {
      const tok = await p;
      const r = await list(tok);
      assert.equal(r.status, 401, `${why}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error?.code, 'unauthorized', why);
      assert.doesNotMatch(r.body.error?.message ?? '', /at |Error:/, `${why}: no internals in the message`);
      await upgradeRefused(tok);
    }
  });

  it('fetches the key set at most once per cooldown for made-up key ids, and picks up a key rotation at the provider', async () => {
    // Let any earlier fetch's cooldown pass, so the first made-up kid may fetch once.
    await new Promise((r) => setTimeout(r, COOLDOWN_S * 1000 + 200));
    const fetchesBefore = idp.jwksFetches;
    for (let i = 0; i < 20; i++) {
      const tok = await idp.sign({ kid: `made-up-${i}`, claims: claimsFor('mallory', 'd') });
      assert.equal((await list(tok)).status, 401);
    }
    assert.ok(idp.jwksFetches - fetchesBefore <= 1, `20 made-up kids within the cooldown fetched the key set ${idp.jwksFetches - fetchesBefore} times`);

    // Rotation: the provider publishes a new key and retires the old RS256 one.
    const old = idp.key('RS256');
    const next = await newKey('RS256');
    idp.rotate([next, idp.key('ES256'), idp.key('EdDSA')]);
    const fresh = await idp.token('rotated', 'd1', { key: next });
    // Within a cooldown of the last fetch the new kid may be refused; it is accepted once the cooldown passed.
    const deadline = Date.now() + COOLDOWN_S * 1000 + 10_000;
    let r = await list(fresh);
    while (r.status !== 200 && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 250));
      r = await list(fresh);
    }
    assert.equal(r.status, 200, `new key not picked up: ${JSON.stringify(r.body)}`);
    await open(fresh);
    // The retired key signs nothing any more.
    const retired = await idp.token('rotated', 'd1', { key: old });
    assert.equal((await list(retired)).status, 401);
    await upgradeRefused(retired);
  });

  it('revocation closes the user’s sockets with 4001 and refuses their older tokens, also after an edge restart; new tokens work', async () => {
    const past = Math.floor(Date.now() / 1000) - 10;
    const oldTok = await idp.token('rev-user', 'phone', { iat: past });
    const oldTok2 = await idp.token('rev-user', 'laptop', { iat: past });
    const bystanderTok = await idp.token('rev-bystander', 'phone', { iat: past });
    const a = await open(oldTok);
    const b = await open(oldTok2);
    const bystander = await open(bystanderTok);
    assert.equal((await list(oldTok)).status, 200);

    const r = await revoke('rev-user');
    assert.equal(r.closed, 2);
    assert.equal((await closedWith(a)).code, CLOSE_CODES.unauthorized.code);
    assert.equal((await closedWith(b)).code, CLOSE_CODES.unauthorized.code);
    const refused = await list(oldTok);
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error?.code, 'unauthorized');
    await upgradeRefused(oldTok);
    // Another user is untouched.
    assert.equal((await bystander.request({ t: 'ping' })).t, 'pong');

    // A token issued at or after the revocation time works, on HTTP and the upgrade.
    const newTok = await idp.token('rev-user', 'phone', { iat: r.before });
    assert.equal((await list(newTok)).status, 200);
    const c = await open(newTok);
    assert.equal((await c.request({ t: 'ping' })).t, 'pong');

    // The revocation time is in Durable Object storage: it survives a restart of the edge.
    await sys.restartEdge();
    assert.equal((await list(oldTok)).status, 401);
    await upgradeRefused(oldTok);
    assert.equal((await list(newTok)).status, 200);
  });

  it('a live socket is asked for a new token before expiry; `refresh` extends it; one that does not refresh is closed with 4001', async () => {
    const expIn = 4;
    const refresher = await open(await idp.token('exp-user', 'refresher', { expIn }));
    const idle = await open(await idp.token('exp-user', 'idle', { expIn }));
    const hello = await refresher.next((f) => f.t === 'hello');
    // Asked AUTH_REFRESH_NOTICE_SECONDS before exp.
    const reauth = await refresher.next((f) => f.t === 'reauth', 10_000);
    assert.equal(reauth.exp, hello.exp);

    // A token for another device, and an expired one, are refused; the socket keeps its deadline.
    const other = await refresher.request({ t: 'refresh', token: await idp.token('exp-user', 'someone-else', { expIn: 300 }) });
    assert.equal(other.t, 'error');
    assert.equal(other.code, 'unauthorized');
    const stale = await refresher.request({ t: 'refresh', token: await idp.token('exp-user', 'refresher', { expIn: -30 }) });
    assert.equal(stale.code, 'unauthorized');

    const fresh = await refresher.request({ t: 'refresh', token: await idp.token('exp-user', 'refresher', { expIn: 300 }) });
    assert.equal(fresh.t, 'refreshed', JSON.stringify(fresh));
    assert.ok(fresh.exp > hello.exp);

    // The socket that did not refresh is closed with 4001 at its token's expiry plus the grace …
    const closed = await closedWith(idle, 20_000);
    assert.equal(closed.code, CLOSE_CODES.unauthorized.code);
    // … and the one that refreshed, whose old deadline was the same, is still served.
    assert.equal(refresher.closeReceived(), null);
    assert.equal((await refresher.request({ t: 'ping' })).t, 'pong');
  });

  it('the SDK refreshes its socket’s token from its token source and stays connected past the first token’s expiry', async () => {
    let issued = 0;
    const statuses: string[] = [];
    const tokenErrors: unknown[] = [];
    const client = new SwitchboardClient({
      url: sys.edgeUrl,
      token: () => (issued++, idp.fetchToken('sdk-user', 'sdk-dev', 4)),
      socket: (u) => new WebSocket(u) as unknown as SocketLike,
      onStatus: (s, d) => statuses.push(`${s}${d ? ` ${d}` : ''}`),
      onTokenError: (err) => tokenErrors.push(err),
    });
    try {
      await client.connect();
      const firstExp = Math.floor(Date.now() / 1000) + 4;
      // Past the first token's expiry and grace (4 + 1 s): the socket lives on refreshed tokens.
      const deadline = Date.now() + 20_000;
      while (Date.now() / 1000 < firstExp + 2) {
        if (Date.now() > deadline) throw new Error('timed out');
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(issued >= 3, `tokens fetched: ${issued} (the connect's, then a refresh every ~2 s)`);
      assert.equal(client.stats.reconnects, 0, `statuses: ${statuses.join(', ')}`);
      assert.deepEqual(tokenErrors, []);
      assert.deepEqual(statuses, ['connecting', 'online']);
      const convs = await client.request({ t: 'ping' });
      assert.equal(convs.t, 'pong');
    } finally {
      client.close();
    }
  });
});
