import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NonceCache, SIGNATURE_WINDOW_MS, signRequest, verifySignature } from '../src/index.ts';

const secret = 'test-secret-0123456789';
const headersOf = (h: Record<string, string>) => new Headers(h);

describe('internal request signing', () => {
  it('verifies what it signed', async () => {
    const h = await signRequest(secret, 'POST', '/internal/x', '{"a":1}');
    const r = await verifySignature(secret, 'POST', '/internal/x', '{"a":1}', headersOf(h));
    assert.equal(r.ok, true);
  });

  it('refuses a changed body, path, method or key', async () => {
    const h = await signRequest(secret, 'POST', '/internal/x', '{"a":1}');
    assert.deepEqual(await verifySignature(secret, 'POST', '/internal/x', '{"a":2}', headersOf(h)), { ok: false, reason: 'bad signature' });
    assert.equal((await verifySignature(secret, 'POST', '/internal/y', '{"a":1}', headersOf(h))).ok, false);
    assert.equal((await verifySignature(secret, 'PUT', '/internal/x', '{"a":1}', headersOf(h))).ok, false);
    assert.equal((await verifySignature('another-secret-0123456', 'POST', '/internal/x', '{"a":1}', headersOf(h))).ok, false);
  });

  it('refuses unsigned and stale requests', async () => {
    assert.deepEqual(await verifySignature(secret, 'POST', '/p', '', headersOf({})), { ok: false, reason: 'unsigned' });
    const old = Date.now() - SIGNATURE_WINDOW_MS - 1000;
    const h = await signRequest(secret, 'POST', '/p', '', old);
    assert.deepEqual(await verifySignature(secret, 'POST', '/p', '', headersOf(h)), { ok: false, reason: 'stale timestamp' });
  });

  it('NonceCache flags a replay within the window only', () => {
    const c = new NonceCache(1000);
    assert.equal(c.seen('n1', 0), false);
    assert.equal(c.seen('n1', 500), true);
    assert.equal(c.seen('n1', 2000), false);
  });

  it('NonceCache forgets nonces oldest first as they expire, at any rate', () => {
    const c = new NonceCache(1000);
    // 50,000 calls within one window (about 50,000/s): every one new, every replay refused.
    for (let i = 0; i < 50_000; i++) assert.equal(c.seen(`a${i}`, i / 50), false);
    assert.equal(c.size, 50_000);
    assert.equal(c.seen('a123', 999), true);
    // Half a window later the first half has gone, in order; the rest is still refused.
    assert.equal(c.seen('b', 1500), false);
    assert.equal(c.size, 25_000 + 1);
    assert.equal(c.seen('a10', 1500), false, 'expired: a new call');
    assert.equal(c.seen('a40000', 1500), true);
  });
});
