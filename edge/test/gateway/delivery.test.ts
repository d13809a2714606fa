import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { WireMsg } from '../../src/gateway/api.ts';
import { DeliveryTracker, deviceKey } from '../../src/gateway/delivery.ts';

const m = (conv: string, seq: number): WireMsg => ({ conv, seq, text: `{"seq":${seq}}` });
const opts = { window: 5, retransmitMs: 1000, maxRetransmitMs: 4000, maxAttempts: 3 };
const phone = { user: 'ann', device: 'phone' };
const laptop = { user: 'ann', device: 'laptop' };
const P = deviceKey('ann', 'phone');
const L = deviceKey('ann', 'laptop');
let t: DeliveryTracker;

describe('DeliveryTracker', () => {
  beforeEach(() => {
    t = new DeliveryTracker(opts);
  });

  it('keeps a push in flight until a cumulative ack covers it', () => {
    for (let s = 1; s <= 3; s++) assert.equal(t.track(P, phone, m('c', s), 0), 'sent');
    assert.equal(t.inflightCount(P), 3);
    assert.equal(t.ack(P, phone, 'c', 2), true);
    assert.equal(t.inflightCount(P), 1);
    assert.equal(t.cursor(P, 'c'), 2);
    assert.equal(t.track(P, phone, m('c', 2), 10), 'acked', 'an already acked seq is not pushed again');
  });

  it('pushes a message once while it is in flight, however many paths deliver it', () => {
    assert.equal(t.track(P, phone, m('c', 1), 0), 'sent');
    assert.equal(t.track(P, phone, m('c', 1), 5), 'inflight', 'a second delivery waits for the retransmit timer');
    assert.equal(t.inflightCount(P), 1);
    t.ack(P, phone, 'c', 1);
    assert.equal(t.track(P, phone, m('c', 1), 10), 'acked');
  });

  it('keeps devices apart: the same device id of two users is two devices', () => {
    const bob = { user: 'bob', device: 'phone' };
    t.track(P, phone, m('c', 1), 0);
    assert.equal(t.track(deviceKey('bob', 'phone'), bob, m('c', 1), 0), 'sent');
    t.ack(P, phone, 'c', 1);
    assert.equal(t.inflightCount(deviceKey('bob', 'phone')), 1);
  });

  it('retransmits due messages in seq order with doubling intervals, capped', () => {
    t.track(P, phone, m('c', 2), 0);
    t.track(P, phone, m('c', 1), 0);
    assert.deepEqual(t.due(999).resend, []);
    assert.deepEqual(t.due(1000).resend.map((r) => [r.msg.seq, r.device]), [[1, 'phone'], [2, 'phone']]);
    assert.equal(t.nextDue(), 1000 + 2000, 'intervals double: 1 s, then 2 s');
    assert.deepEqual(t.due(2999).resend, []);
    assert.equal(t.due(3000).resend.length, 2);
    assert.equal(t.nextDue(), 3000 + 4000, 'then 4 s, the cap');
  });

  it('gives up on a device that never acks: stalled, its window dropped', () => {
    t.track(P, phone, m('c', 1), 0);
    t.track(L, laptop, m('c', 1), 0);
    t.ack(L, laptop, 'c', 1);
    t.due(1000);
    t.due(10_000);
    const last = t.due(100_000);
    assert.deepEqual(last.stalled, [{ key: P, user: 'ann', device: 'phone' }]);
    assert.equal(t.inflightCount(P), 0);
    assert.equal(t.nextDue(), null);
  });

  it('bounds the window: past it the device is lagging', () => {
    for (let s = 1; s <= 5; s++) assert.equal(t.track(P, phone, m('c', s), 0), 'sent');
    assert.equal(t.track(P, phone, m('c', 6), 0), 'lagging');
    assert.equal(t.track(L, laptop, m('c', 6), 0), 'sent', 'windows are per device');
  });

  it('hands moved cursors over once, forward only, and takes them back after a failed write', () => {
    t.know(P, phone, 'a');
    t.know(P, phone, 'b');
    t.know(L, laptop, 'a');
    t.ack(P, phone, 'a', 5);
    assert.equal(t.ack(P, phone, 'a', 3), false, 'an older ack changes nothing');
    t.ack(P, phone, 'b', 1);
    t.ack(L, laptop, 'a', 9);
    const taken = t.takeDirty();
    assert.deepEqual(
      taken.sort((x, y) => (x.device + x.conv < y.device + y.conv ? -1 : 1)),
      [
        { user: 'ann', device: 'laptop', conv: 'a', seq: 9 },
        { user: 'ann', device: 'phone', conv: 'a', seq: 5 },
        { user: 'ann', device: 'phone', conv: 'b', seq: 1 },
      ],
    );
    assert.deepEqual(t.takeDirty(), []);
    assert.equal(t.hasDirty, false);
    t.restoreDirty(taken);
    assert.equal(t.takeDirty().length, 3, 'a failed write is written again');
  });

  it('seeds cursors from the region without lowering them', () => {
    t.know(P, phone, 'a');
    t.ack(P, phone, 'a', 5);
    t.takeDirty();
    t.seed(P, phone, 'a', 3);
    t.seed(P, phone, 'b', 7);
    assert.equal(t.cursor(P, 'a'), 5);
    assert.equal(t.cursor(P, 'b'), 7);
    assert.deepEqual(t.takeDirty(), [], 'what the region has is not written back');
    assert.equal(t.track(P, phone, m('b', 7), 0), 'acked');
  });

  it('detach returns the in-flight messages in seq order per conversation; release forgets a device with nothing left', () => {
    t.track(P, phone, m('b', 2), 0);
    t.track(P, phone, m('a', 3), 0);
    t.track(P, phone, m('a', 1), 0);
    t.know(P, phone, 'z');
    t.ack(P, phone, 'z', 1);
    assert.deepEqual(t.detach(P).map((x) => [x.conv, x.seq]), [['b', 2], ['a', 1], ['a', 3]]);
    assert.equal(t.inflightCount(P), 0);
    t.release(P);
    assert.equal(t.deviceCount, 1, 'an unwritten cursor keeps the device');
    t.takeDirty();
    t.release(P);
    assert.equal(t.deviceCount, 0);
  });

  it('an ack of a conversation never pushed to the device nor used by it here moves nothing and writes nothing', () => {
    assert.equal(t.ack(P, phone, 'stranger', 50), 'unknown');
    assert.equal(t.cursor(P, 'stranger'), 0);
    assert.deepEqual(t.takeDirty(), []);
    assert.equal(t.deviceCount, 0, 'not even a device entry');
    t.track(P, phone, m('pushed', 1), 0);
    assert.equal(t.ack(P, phone, 'pushed', 1), true, 'a pushed conversation is known');
    t.know(P, phone, 'sent-in');
    assert.equal(t.ack(P, phone, 'sent-in', 2), true, 'one the device used here is known');
    t.seed(P, phone, 'resumed', 0);
    assert.equal(t.ack(P, phone, 'resumed', 1), true, 'one its resume listed is known');
  });

  it('bounds the window in bytes as well as in messages', () => {
    const big = (conv: string, seq: number): WireMsg => ({ conv, seq, text: 'x'.repeat(64 * 1024) });
    const b = new DeliveryTracker({ window: 1000, windowBytes: 256 * 1024, retransmitMs: 1000, maxRetransmitMs: 30_000, maxAttempts: 6 });
    for (let s = 1; s <= 4; s++) assert.equal(b.track(P, phone, big('a', s), 0), 'sent', `message ${s}`);
    assert.equal(b.track(P, phone, big('a', 5), 0), 'lagging', 'the fifth 64 KiB message is past 256 KiB');
    b.ack(P, phone, 'a', 2);
    assert.equal(b.track(P, phone, big('a', 5), 0), 'sent', 'acks free their bytes');
    b.detach(P);
    const huge: WireMsg = { conv: 'a', seq: 9, text: 'x'.repeat(300 * 1024) };
    assert.equal(b.track(P, phone, huge, 0), 'sent', 'one message larger than the bound still goes to an empty window');
    assert.equal(b.track(P, phone, m('a', 10), 0), 'lagging');
  });
});
