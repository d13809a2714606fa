import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConversationCursor, type Msg } from '../src/index.ts';

const m = (seq: number): Msg => ({ t: 'msg', conv: 'c', seq, cmid: `m${seq}`, from: 'a', dev: 'd', ts: seq, body: String(seq) });
const seqs = (v: ReturnType<ConversationCursor['accept']>) => (v.kind === 'deliver' ? v.msgs.map((x) => x.seq) : v.kind);

describe('ConversationCursor', () => {
  it('releases in order and drops duplicates', () => {
    const c = new ConversationCursor();
    assert.deepEqual(seqs(c.accept(m(1))), [1]);
    assert.deepEqual(seqs(c.accept(m(2))), [2]);
    assert.equal(seqs(c.accept(m(2))), 'duplicate');
    assert.equal(seqs(c.accept(m(1))), 'duplicate');
    assert.equal(c.delivered, 2);
  });

  it('holds messages behind a gap and names exactly the missing range', () => {
    const c = new ConversationCursor(3);
    assert.deepEqual(c.accept(m(7)), { kind: 'gap', after: 3, upTo: 6 });
    assert.deepEqual(c.accept(m(6)), { kind: 'gap', after: 3, upTo: 5 });
    assert.equal(c.accept(m(7)).kind, 'duplicate');
    assert.equal(c.pending, 2);
    assert.deepEqual(seqs(c.accept(m(4))), [4]);
    assert.deepEqual(seqs(c.accept(m(5))), [5, 6, 7]);
    assert.equal(c.pending, 0);
    assert.equal(c.delivered, 7);
  });

  it('advances only forward, and strands nothing it held', () => {
    const c = new ConversationCursor(2);
    c.accept(m(5));
    c.accept(m(7));
    c.advance(1);
    assert.equal(c.delivered, 2);
    c.advance(5);
    assert.equal(c.delivered, 5);
    assert.equal(c.pending, 0);
    assert.deepEqual(seqs(c.accept(m(6))), [6]);
    assert.deepEqual(seqs(c.accept(m(7))), [7], 'a held seq above the new cursor comes again and is released');
  });

  it('releases every seq exactly once whatever the arrival order', () => {
    const order = Array.from({ length: 200 }, (_, i) => i + 1);
    for (let i = order.length - 1; i > 0; i--) {
      const j = (i * 7919) % (i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    const c = new ConversationCursor();
    const out: number[] = [];
    for (const s of [...order, ...order.slice(0, 50)]) {
      const v = c.accept(m(s));
      if (v.kind === 'deliver') out.push(...v.msgs.map((x) => x.seq));
    }
    assert.deepEqual(out, Array.from({ length: 200 }, (_, i) => i + 1));
  });
});
