import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClientFrame, LIMITS, fitsUtf8, utf8Length } from '../src/index.ts';
import { fastClientFrame } from '../src/fast-frames.ts';

const big = (n: number, ch = 'x') => ch.repeat(n);

/** Frames around every rule of the send and ack schemas, valid and not. */
const CASES: Record<string, unknown>[] = [
  { t: 'ack', conv: 'c1', seq: 0 },
  { t: 'ack', conv: 'c1', seq: 7, rid: 'r' },
  { t: 'ack', conv: 'c1', seq: 7, extra: true },
  { t: 'ack', conv: 'c1', seq: -1 },
  { t: 'ack', conv: 'c1', seq: 1.5 },
  { t: 'ack', conv: 'c1', seq: Number.MAX_SAFE_INTEGER },
  { t: 'ack', conv: 'c1', seq: Number.MAX_SAFE_INTEGER + 1 },
  { t: 'ack', conv: 'c1', seq: '3' },
  { t: 'ack', conv: '', seq: 1 },
  { t: 'ack', conv: 'a b', seq: 1 },
  { t: 'ack', conv: big(64), seq: 1 },
  { t: 'ack', conv: big(65), seq: 1 },
  { t: 'ack', seq: 1 },
  { t: 'ack', conv: 'c1', seq: 1, rid: 5 },
  { t: 'ack', conv: 'c1', seq: 1, rid: big(LIMITS.maxIdLength) },
  { t: 'ack', conv: 'c1', seq: 1, rid: big(LIMITS.maxIdLength + 1) },
  { t: 'send', conv: 'c1', cmid: 'm', body: 'hi' },
  { t: 'send', conv: 'c1', cmid: 'm', body: '', rid: 'r1', x: 1 },
  { t: 'send', conv: 'c1', cmid: '', body: 'hi' },
  { t: 'send', conv: 'c1', cmid: big(LIMITS.maxIdLength), body: 'hi' },
  { t: 'send', conv: 'c1', cmid: big(LIMITS.maxIdLength + 1), body: 'hi' },
  { t: 'send', conv: 'c1', cmid: 'm', body: 3 },
  { t: 'send', conv: 'c1', cmid: 'm' },
  { t: 'send', conv: 'c1', cmid: 'm', body: big(LIMITS.maxBodyBytes) },
  { t: 'send', conv: 'c1', cmid: 'm', body: big(LIMITS.maxBodyBytes + 1) },
  { t: 'send', conv: 'c1', cmid: 'm', body: big(LIMITS.maxBodyBytes / 3, 'é') },
  { t: 'send', conv: 'c1', cmid: 'm', body: big(LIMITS.maxBodyBytes / 2 + 1, 'é') },
  { t: 'send', conv: 'c1', cmid: 'm', body: big(LIMITS.maxBodyBytes / 4, '😀') },
  { t: 'send', conv: 'c1', cmid: 'm', body: big(LIMITS.maxBodyBytes / 4 + 1, '😀') },
  { t: 'send', conv: 'c/1', cmid: 'm', body: 'hi' },
  { t: 'sync', conv: 'c1' },
  { t: 'ping' },
];

describe('fastClientFrame', () => {
  it('accepts exactly what the schema accepts, and returns what the schema returns', () => {
    for (const c of CASES) {
      const fast = fastClientFrame(c);
      const slow = ClientFrame.safeParse(c);
      const label = JSON.stringify(c).slice(0, 120);
      if (fast) {
        assert.ok(slow.success, `fast path accepted what the schema refuses: ${label}`);
        assert.deepEqual(fast, slow.data, label);
      } else if (c.t === 'send' || c.t === 'ack') {
        assert.equal(slow.success, false, `fast path left a valid ${c.t} to the schema: ${label}`);
      }
    }
  });
});

describe('fitsUtf8', () => {
  it('agrees with the encoded length around the limit, for 1-, 2-, 3- and 4-byte characters', () => {
    for (const ch of ['x', 'é', '€', '😀', '\ud800']) {
      for (let n = 0; n <= 40; n++) {
        const s = ch.repeat(n);
        for (const max of [0, 1, 10, 30, 31, 60, 100]) assert.equal(fitsUtf8(s, max), utf8Length(s) <= max, `${JSON.stringify(ch)}×${n} within ${max}`);
      }
    }
  });
});
