import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WireMsg } from '../../src/gateway/api.ts';
import { Orphans } from '../../src/gateway/orphans.ts';

const m = (conv: string, seq: number, bytes = 10): WireMsg => ({ conv, seq, text: 'x'.repeat(bytes) });

describe('Orphans (what closed sockets had in flight, for their next connection)', () => {
  it('hands a device its messages once, merged with what it held before, in seq order per conversation', () => {
    const o = new Orphans(1000, 1_000_000);
    o.put('ann\nphone', [m('a', 2), m('b', 1)], 0);
    o.put('ann\nphone', [m('a', 1), m('a', 2)], 10);
    assert.deepEqual(o.take('ann\nphone', 20).map((x) => [x.conv, x.seq]), [['a', 1], ['a', 2], ['b', 1]]);
    assert.deepEqual(o.take('ann\nphone', 20), [], 'taken once');
    assert.equal(o.size, 0);
  });

  it('drops what is older than its time to live', () => {
    const o = new Orphans(1000, 1_000_000);
    o.put('a', [m('c', 1)], 0);
    assert.deepEqual(o.take('a', 1001), []);
    o.put('b', [m('c', 1)], 0);
    o.put('c', [m('c', 1)], 900);
    o.sweep(1500);
    assert.deepEqual(o.take('b', 1500), [], 'swept');
    assert.equal(o.take('c', 1500).length, 1);
  });

  it('past its byte bound, the oldest devices go first', () => {
    const o = new Orphans(60_000, 250);
    o.put('old', [m('c', 1, 100)], 0);
    o.put('mid', [m('c', 1, 100)], 1);
    o.put('new', [m('c', 1, 100)], 2);
    assert.equal(o.size, 200);
    assert.deepEqual(o.take('old', 3), []);
    assert.equal(o.take('new', 3).length, 1);
  });
});
