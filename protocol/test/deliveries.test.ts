import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliverRequest, packDeliveries, unpackDeliveries, type Delivery, type Msg } from '../src/index.ts';

const msg = (seq: number): Msg => ({ t: 'msg', conv: 'g1', seq, cmid: `c${seq}`, from: 'alice', dev: 'a1', ts: 1000 + seq, body: `body ${seq}` });

describe('deliveries on the wire (region → edge)', () => {
  it('sends each message once and gives every user their deliveries back in order', () => {
    const m1 = msg(1);
    const m2 = msg(2);
    const deliveries: Delivery[] = [
      { user: 'bob', msg: m1 },
      { user: 'carol', msg: { ...m1 } }, // an equal copy: still sent once
      { user: 'alice', msg: m1, skipDevice: 'a1' },
      { user: 'bob', msg: m2 },
    ];
    const wire = packDeliveries(deliveries);
    assert.equal(wire.msgs.length, 2);
    assert.ok(DeliverRequest.safeParse(JSON.parse(JSON.stringify(wire))).success);
    const back = unpackDeliveries(wire);
    assert.deepEqual([...back.keys()], ['bob', 'carol', 'alice']);
    assert.deepEqual(back.get('bob')!.map((d) => d.msg.seq), [1, 2]);
    assert.deepEqual(back.get('alice'), [{ user: 'alice', msg: m1, skipDevice: 'a1' }]);
    assert.deepEqual(back.get('carol'), [{ user: 'carol', msg: m1 }]);
  });

  it('refuses an index past the messages', () => {
    const r = DeliverRequest.safeParse({ msgs: [msg(1)], to: [{ user: 'bob', m: 1 }] });
    assert.equal(r.success, false);
  });
});
