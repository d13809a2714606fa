import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PRESENCE, ServerFrame, decodeClientFrame } from '../src/index.ts';

describe('presence and typing frames', () => {
  it('decodes watch, unwatch and typing', () => {
    for (const f of [{ t: 'watch', rid: 'r1', users: ['bob', 'carol'] }, { t: 'unwatch', users: ['bob'] }, { t: 'typing', conv: 'gabc' }]) {
      const d = decodeClientFrame(JSON.stringify(f));
      assert.ok(d.ok, JSON.stringify(d));
      assert.deepEqual(d.frame, f);
    }
  });

  it('refuses empty, oversized and malformed lists with invalid_frame and the rid', () => {
    const cases = [
      { t: 'watch', rid: 'x', users: [] },
      { t: 'watch', rid: 'x', users: Array.from({ length: PRESENCE.maxWatch + 1 }, (_, i) => `u${i}`) },
      { t: 'watch', rid: 'x', users: ['not valid'] },
      { t: 'unwatch', rid: 'x' },
      { t: 'typing', rid: 'x' },
      { t: 'typing', rid: 'x', conv: 'has/slash' },
    ];
    for (const f of cases) {
      const d = decodeClientFrame(JSON.stringify(f));
      assert.ok(!d.ok, JSON.stringify(f).slice(0, 80));
      assert.equal(d.error.code, 'invalid_frame');
      assert.equal(d.rid, 'x');
    }
  });

  it('accepts exactly the bound', () => {
    const d = decodeClientFrame(JSON.stringify({ t: 'watch', users: Array.from({ length: PRESENCE.maxWatch }, (_, i) => `u${i}`) }));
    assert.ok(d.ok);
  });

  it('server frames: presence, watching, typing', () => {
    for (const f of [
      { t: 'presence', user: 'bob', status: 'offline', last_seen: 1795818257647 },
      { t: 'presence', user: 'bob', status: 'online', last_seen: null },
      { t: 'watching', rid: 'r', users: [{ user: 'bob', status: 'online', last_seen: null }] },
      { t: 'typing', conv: 'gabc', user: 'alice' },
    ]) assert.ok(ServerFrame.safeParse(f).success, JSON.stringify(f));
    assert.ok(!ServerFrame.safeParse({ t: 'presence', user: 'bob', status: 'away', last_seen: null }).success);
  });
});
