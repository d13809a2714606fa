import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import type { Msg } from '@switchboard/protocol';
import { DeliveryTracker } from '../src/delivery.ts';
import { memorySql } from './sqlite-adapter.ts';

const m = (conv: string, seq: number): Msg => ({ t: 'msg', conv, seq, cmid: `c${seq}`, from: 'a', dev: 'd', ts: seq, body: `b${seq}` });
const opts = { window: 5, retransmitMs: 1000, maxRetransmitMs: 4000, maxAttempts: 3 };
let t: DeliveryTracker;

describe('DeliveryTracker', () => {
  beforeEach(() => {
    t = new DeliveryTracker(memorySql().sql, opts);
  });

  it('keeps a push in flight until a cumulative ack covers it', () => {
    for (let s = 1; s <= 3; s++) assert.equal(t.track('phone', m('c', s), 0), 'sent');
    assert.equal(t.inflightCount('phone'), 3);
    t.ack('phone', 'c', 2);
    assert.equal(t.inflightCount('phone'), 1);
    assert.equal(t.cursor('phone', 'c'), 2);
    assert.equal(t.track('phone', m('c', 2), 10), 'acked', 'an already acked seq is not pushed again');
  });

  it('pushes a message once while it is in flight, however many paths deliver it', () => {
    assert.equal(t.track('phone', m('c', 1), 0), 'sent');
    assert.equal(t.track('phone', m('c', 1), 5), 'inflight', 'a second delivery waits for the retransmit timer');
    assert.equal(t.inflightCount('phone'), 1);
    t.ack('phone', 'c', 1);
    assert.equal(t.track('phone', m('c', 1), 10), 'acked');
  });

  it('retransmits due messages in seq order with doubling intervals, capped', () => {
    t.track('phone', m('c', 2), 0);
    t.track('phone', m('c', 1), 0);
    assert.deepEqual(t.due(999).resend, []);
    assert.deepEqual(t.due(1000).resend.map((r) => [r.seq, r.attempts]), [[1, 2], [2, 2]]);
    assert.equal(t.nextDue(), 1000 + 2000, 'intervals double: 1 s, then 2 s');
    assert.deepEqual(t.due(2999).resend, []);
    assert.deepEqual(t.due(3000).resend.map((r) => r.attempts), [3, 3]);
    assert.equal(t.nextDue(), 3000 + 4000, 'then 4 s, the cap');
  });

  it('gives up on a device that never acks: stalled, its rows dropped', () => {
    t.track('phone', m('c', 1), 0);
    t.track('laptop', m('c', 1), 0);
    t.ack('laptop', 'c', 1);
    t.due(1000);
    t.due(10_000);
    const last = t.due(100_000);
    assert.deepEqual(last.stalled, ['phone']);
    assert.equal(t.inflightCount('phone'), 0);
    assert.equal(t.nextDue(), null);
  });

  it('bounds the window: past it the device is lagging', () => {
    for (let s = 1; s <= 5; s++) assert.equal(t.track('phone', m('c', s), 0), 'sent');
    assert.equal(t.track('phone', m('c', 6), 0), 'lagging');
    assert.equal(t.track('laptop', m('c', 6), 0), 'sent', 'windows are per device');
  });

  it('writes acked cursors on flush, together, and serves unflushed ones from memory', () => {
    const { sql } = memorySql();
    const a = new DeliveryTracker(sql, opts);
    a.ack('phone', 'c', 4);
    a.ack('phone', 'd', 2);
    assert.equal(a.needsFlush, true);
    assert.deepEqual([...a.cursors('phone', ['c', 'd'])].sort(), [['c', 4], ['d', 2]], 'unflushed acks count');
    assert.equal(new DeliveryTracker(sql, opts).cursor('phone', 'c'), 0, 'not written before the flush');
    assert.equal(a.flush(), 2);
    assert.equal(a.needsFlush, false);
    const b = new DeliveryTracker(sql, opts);
    assert.equal(b.cursor('phone', 'c'), 4, 'durable after it');
    assert.equal(b.track('phone', m('c', 4), 0), 'acked', 'a restarted object does not push what was acked');
    assert.equal(b.inflightCount('phone'), 0, 'the in-flight window is not persisted');
  });

  it('cursors only move forward, per device and conversation, and survive forget', () => {
    t.ack('phone', 'a', 5);
    t.ack('phone', 'a', 3);
    t.ack('phone', 'b', 1);
    t.ack('laptop', 'a', 9);
    t.forget('phone');
    assert.deepEqual([...t.cursors('phone', ['a', 'b', 'zz'])].sort(), [['a', 5], ['b', 1]]);
    t.flush();
    t.ack('phone', 'a', 4);
    assert.equal(t.needsFlush, false, 'an older ack changes nothing');
    assert.deepEqual([...t.cursors('phone', ['a'])], [['a', 5]]);
    assert.equal(t.cursor('laptop', 'a'), 9);
  });
});
