import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliverRequest, ProtocolError, fastDeliverRequest, packDeliveries, parseDeliverRequest, unpackDeliveries, type Delivery, type Msg } from '../src/index.ts';

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

describe('fastDeliverRequest (the hand check of /internal/deliver bodies)', () => {
  const id64 = 'u'.repeat(64);
  const bodies: unknown[] = [
    { msgs: [msg(1)], to: [{ user: 'bob', m: 0 }] },
    { msgs: [msg(1), msg(2)], to: [{ user: 'bob', m: 1, skip: 'd1', extra: 1 }, { user: 'al.ice_-', m: 0 }] },
    { msgs: [msg(1)], to: [{ user: id64, m: 0 }] },
    { msgs: [msg(1)], to: [{ user: id64 + 'u', m: 0 }] },
    { msgs: [msg(1)], to: [{ user: '_bob', m: 0 }] },
    { msgs: [msg(1)], to: [{ user: 'bob', m: 1 }] },
    { msgs: [msg(1)], to: [{ user: 'bob', m: -1 }] },
    { msgs: [msg(1)], to: [{ user: 'bob', m: 0.5 }] },
    { msgs: [msg(1)], to: [{ user: 'bob', m: '0' }] },
    { msgs: [msg(1)], to: [{ user: 'bob', m: 0, skip: '' }] },
    { msgs: [msg(1)], to: [{ user: 'bob', m: 0, skip: 7 }] },
    { msgs: [msg(1)], to: [null] },
    { msgs: [msg(1)], to: [[]] },
    { msgs: [msg(1)], to: [] },
    { msgs: [], to: [{ user: 'bob', m: 0 }] },
    { msgs: [{ ...msg(1), seq: -2 }], to: [{ user: 'bob', m: 0 }] },
    { msgs: [msg(1)] },
    { to: [{ user: 'bob', m: 0 }] },
    { msgs: [msg(1)], to: Array.from({ length: 20_001 }, () => ({ user: 'bob', m: 0 })) },
    { msgs: [msg(1)], to: Array.from({ length: 20_000 }, () => ({ user: 'bob', m: 0 })) },
    null,
    [],
    'x',
  ];

  it('gives the schema’s verdict and value on every body', () => {
    for (const b of bodies) {
      const fast = fastDeliverRequest(b);
      const slow = DeliverRequest.safeParse(b);
      const label = JSON.stringify(b)?.slice(0, 100);
      assert.equal(fast !== null, slow.success, label);
      if (fast && slow.success) assert.deepEqual(fast, slow.data, label);
    }
  });

  it('parseDeliverRequest answers bad_json and invalid_frame like parseJsonBody', () => {
    assert.throws(() => parseDeliverRequest('{'), (e: unknown) => e instanceof ProtocolError && e.code === 'bad_json');
    assert.throws(() => parseDeliverRequest('{"msgs":[],"to":[]}'), (e: unknown) => e instanceof ProtocolError && e.code === 'invalid_frame');
    assert.deepEqual(parseDeliverRequest(JSON.stringify({ msgs: [msg(1)], to: [{ user: 'bob', m: 0 }] })).to, [{ user: 'bob', m: 0 }]);
  });
});
