import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenDeadlines, setTokenTimes, tokenTimesFrom, type TokenSocket } from '../../src/gateway/token-expiry.ts';

/** What TokenDeadlines reads of a Conn. */
const conn = (device: string, exp: number | null, iat: number | null = null, ready = true): TokenSocket & { att: { device: string } } => ({ att: { device, exp, iat }, ready, closing: false });

describe('token deadlines of a gateway’s sockets', () => {
  const T = 1_000_000; // seconds
  const deadlines = () => new TokenDeadlines({ noticeSeconds: 60, graceSeconds: 30 });

  it('asks once, NOTICE before exp; closes after exp + GRACE; a socket without exp never', () => {
    const d = deadlines();
    const a = conn('a', T);
    const none = conn('none', null);
    assert.equal(d.nextDue([a, none]), (T - 60) * 1000);
    assert.deepEqual(d.due([a, none], (T - 61) * 1000), { notify: [], expire: [] });
    assert.deepEqual(d.due([a, none], (T - 60) * 1000), { notify: [a], expire: [] });
    // Asked: not again for this exp; the next deadline is the close.
    assert.deepEqual(d.due([a], (T - 30) * 1000), { notify: [], expire: [] });
    assert.equal(d.nextDue([a]), (T + 30) * 1000);
    assert.deepEqual(d.due([a], (T + 30) * 1000), { notify: [], expire: [a] });
  });

  it('a refresh (a new exp) moves both deadlines and asks again before the new exp', () => {
    const d = deadlines();
    const a = conn('a', T);
    d.due([a], (T - 60) * 1000);
    a.att.exp = T + 3600;
    assert.deepEqual(d.due([a], (T + 31) * 1000), { notify: [], expire: [] });
    assert.equal(d.nextDue([a]), (T + 3600 - 60) * 1000);
  });

  it('a socket not yet ready is asked on open, not by the alarm; closing sockets are skipped', () => {
    const d = deadlines();
    const pending = conn('p', T, null, false);
    assert.equal(d.nextDue([pending]), (T + 30) * 1000);
    assert.deepEqual(d.due([pending], (T - 10) * 1000).notify, []);
    assert.equal(d.noticeOnOpen(pending, (T - 10) * 1000), true);
    assert.equal(d.noticeOnOpen(pending, (T - 5) * 1000), false);
    const closing = conn('c', T - 1000);
    closing.closing = true;
    assert.deepEqual(d.due([closing], T * 1000), { notify: [], expire: [] });
    assert.equal(d.nextDue([closing]), null);
  });

  it('remembers a revocation for a while: older tokens (and ones without iat) refused, newer ones not', () => {
    const d = deadlines();
    const now = T * 1000;
    d.revoke('u', T, now);
    assert.equal(d.isRevoked('u', T - 1, now), true);
    assert.equal(d.isRevoked('u', null, now), true);
    assert.equal(d.isRevoked('u', T, now), false);
    assert.equal(d.isRevoked('other', T - 1, now), false);
    // Never moved back by an older revocation.
    d.revoke('u', T - 100, now);
    assert.equal(d.isRevoked('u', T - 1, now), true);
    assert.equal(d.isRevoked('u', T - 1, now + 61_000), false, 'forgotten after a minute (the store keeps it)');
  });

  it('token times travel in the upgrade’s headers', () => {
    const h = new Headers();
    setTokenTimes(h, { exp: T, iat: T - 5 });
    assert.deepEqual(tokenTimesFrom(new Request('http://x/', { headers: h })), { exp: T, iat: T - 5 });
    assert.deepEqual(tokenTimesFrom(new Request('http://x/')), { exp: null, iat: null });
    // A client's own header does not survive a token without iat.
    const forged = new Headers({ 'x-sb-token-iat': String(T + 10_000) });
    setTokenTimes(forged, { exp: T, iat: null });
    assert.deepEqual(tokenTimesFrom(new Request('http://x/', { headers: forged })), { exp: T, iat: null });
  });
});
