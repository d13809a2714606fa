import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LIMITS, decodeClientFrame } from '../src/index.ts';

const bad = (raw: string) => {
  const d = decodeClientFrame(raw);
  assert.equal(d.ok, false);
  return d as Extract<typeof d, { ok: false }>;
};

describe('decodeClientFrame', () => {
  it('accepts a well-formed send and fills sync defaults', () => {
    const d = decodeClientFrame(JSON.stringify({ t: 'send', rid: 'a', conv: 'c1', cmid: 'm1', body: 'hi' }));
    assert.deepEqual(d, { ok: true, frame: { t: 'send', rid: 'a', conv: 'c1', cmid: 'm1', body: 'hi' } });
    const s = decodeClientFrame(JSON.stringify({ t: 'sync', conv: 'c1' }));
    assert.ok(s.ok);
    assert.deepEqual(s.frame, { t: 'sync', conv: 'c1', after: 0, limit: LIMITS.defaultSyncLimit });
  });

  it('rejects text that is not JSON with bad_json', () => {
    assert.equal(bad('{nope').error.code, 'bad_json');
  });

  it('rejects non-objects and binary frames', () => {
    assert.equal(bad('[1,2]').error.code, 'invalid_frame');
    assert.equal(bad('"x"').error.code, 'invalid_frame');
    const b = decodeClientFrame(new Uint8Array([123, 125]));
    assert.equal(b.ok, false);
  });

  it('rejects an unknown type and echoes the rid', () => {
    const e = bad(JSON.stringify({ t: 'launch', rid: 'r9' }));
    assert.equal(e.error.code, 'unknown_type');
    assert.equal(e.rid, 'r9');
  });

  it('names the missing field', () => {
    const e = bad(JSON.stringify({ t: 'send', rid: 'r1', conv: 'c1', body: 'x' }));
    assert.equal(e.error.code, 'invalid_frame');
    assert.match(e.error.message, /cmid/);
    assert.equal(e.rid, 'r1');
  });

  it('rejects wrong field types and out-of-range values', () => {
    assert.equal(bad(JSON.stringify({ t: 'ack', conv: 'c1', seq: -1 })).error.code, 'invalid_frame');
    assert.equal(bad(JSON.stringify({ t: 'ack', conv: 'c1', seq: 1.5 })).error.code, 'invalid_frame');
    assert.equal(bad(JSON.stringify({ t: 'sync', conv: 'c1', limit: LIMITS.maxSyncLimit + 1 })).error.code, 'invalid_frame');
    assert.equal(bad(JSON.stringify({ t: 'send', conv: 'bad id!', cmid: 'm', body: '' })).error.code, 'invalid_frame');
  });

  it('rejects a body over the limit with too_large, and a huge frame before parsing it', () => {
    const body = 'é'.repeat(LIMITS.maxBodyBytes / 2 + 1); // 2 bytes each in UTF-8
    assert.equal(bad(JSON.stringify({ t: 'send', rid: 'b', conv: 'c', cmid: 'm', body })).error.code, 'too_large');
    const huge = bad(JSON.stringify({ t: 'send', rid: 'big', conv: 'c', cmid: 'm', body: 'x'.repeat(1_000_000) }));
    assert.equal(huge.error.code, 'too_large');
    assert.equal(huge.rid, 'big');
  });

  it('accepts a body exactly at the limit', () => {
    const d = decodeClientFrame(JSON.stringify({ t: 'send', conv: 'c', cmid: 'm', body: 'x'.repeat(LIMITS.maxBodyBytes) }));
    assert.ok(d.ok);
  });
});
