import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AckCoalescer, type AckTimers } from '../src/index.ts';

/** A clock the test moves by hand. */
function fakeTimers() {
  let now = 0;
  let next = 0;
  const due = new Map<number, { at: number; fn: () => void }>();
  const timers: AckTimers = {
    set: (fn, ms) => (due.set(++next, { at: now + ms, fn }), next),
    clear: (h) => void due.delete(h as number),
  };
  const advance = (ms: number) => {
    const until = now + ms;
    for (;;) {
      const first = [...due].filter(([, t]) => t.at <= until).sort((a, b) => a[1].at - b[1].at)[0];
      if (!first) break;
      due.delete(first[0]);
      now = first[1].at;
      first[1].fn();
    }
    now = until;
  };
  return { timers, advance };
}

describe('AckCoalescer', () => {
  it('sends the first ack at once and folds the rest of the window into one, with the highest seq', () => {
    const { timers, advance } = fakeTimers();
    const sent: [string, number][] = [];
    const acks = new AckCoalescer((c, s) => sent.push([c, s]), 250, timers);
    acks.ack('c1', 1);
    assert.deepEqual(sent, [['c1', 1]]);
    acks.ack('c1', 2);
    acks.ack('c1', 4);
    acks.ack('c1', 3);
    advance(249);
    assert.deepEqual(sent, [['c1', 1]]);
    advance(1);
    assert.deepEqual(sent, [['c1', 1], ['c1', 4]]);
    advance(1000);
    assert.deepEqual(sent, [['c1', 1], ['c1', 4]], 'nothing more without new acks');
    acks.ack('c1', 5);
    assert.deepEqual(sent.at(-1), ['c1', 5], 'after a quiet spell the next ack leaves at once');
  });

  it('keeps conversations apart, and a steady stream costs one ack per window', () => {
    const { timers, advance } = fakeTimers();
    const sent: [string, number][] = [];
    const acks = new AckCoalescer((c, s) => sent.push([c, s]), 250, timers);
    for (let seq = 1; seq <= 20; seq++) {
      acks.ack('a', seq);
      acks.ack('b', seq * 10);
      advance(100);
    }
    advance(1000);
    const of = (c: string) => sent.filter(([x]) => x === c).map(([, s]) => s);
    assert.equal(of('a').at(-1), 20, 'the last seq is always acked');
    assert.equal(of('b').at(-1), 200);
    assert.ok(of('a').length <= 10, `20 messages 100 ms apart took ${of('a').length} acks`);
    assert.deepEqual(of('a'), [...of('a')].sort((x, y) => x - y), 'acks only move forward');
  });

  it('now() sends at once, folding in what was pending; clear() drops the windows', () => {
    const { timers, advance } = fakeTimers();
    const sent: number[] = [];
    const acks = new AckCoalescer((_c, s) => sent.push(s), 250, timers);
    acks.ack('c', 1);
    acks.ack('c', 3);
    acks.now('c', 2);
    assert.deepEqual(sent, [1, 3]);
    advance(300);
    assert.deepEqual(sent, [1, 3], 'the window has nothing newer to send');
    acks.ack('c', 4);
    acks.ack('c', 5);
    acks.clear();
    advance(300);
    assert.deepEqual(sent, [1, 3, 4]);
  });

  it('with no delay every ack leaves at once', () => {
    const sent: number[] = [];
    const acks = new AckCoalescer((_c, s) => sent.push(s), 0);
    acks.ack('c', 1);
    acks.ack('c', 2);
    assert.deepEqual(sent, [1, 2]);
  });
});
