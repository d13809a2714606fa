import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliverRequest, ProtocolError, fastDeliverRequest, packDeliveries, parseDeliverRequest, deliveriesByGateway, type Delivery, type Msg } from '../src/index.ts';

const msg = (seq: number): Msg => ({ t: 'msg', conv: 'g1', seq, cmid: `c${seq}`, from: 'alice', dev: 'a1', ts: 1000 + seq, body: `body ${seq}` });

describe('deliveries on the wire (region → edge)', () => {
  it('sends each message once and gives every gateway its recipients back, in order', () => {
    const m1 = msg(1);
    const m2 = msg(2);
    const deliveries: Delivery[] = [
      { user: 'bob', gw: 'gw:local:1', msg: m1 },
      { user: 'carol', gw: 'gw:local:2', msg: { ...m1 } }, // an equal copy: still sent once
      { user: 'alice', gw: 'gw:local:1', msg: m1, skipDevice: 'a1' },
      { user: 'bob', gw: 'gw:local:1', msg: m2 },
      { user: 'bob', gw: 'gw:weur:1', msg: m2 },
    ];
    const wire = packDeliveries(deliveries);
    assert.equal(wire.msgs.length, 2);
    assert.ok(DeliverRequest.safeParse(JSON.parse(JSON.stringify(wire))).success);
    const back = deliveriesByGateway(wire);
    assert.deepEqual([...back.keys()], ['gw:local:1', 'gw:local:2', 'gw:weur:1']);
    const one = back.get('gw:local:1')!;
    assert.deepEqual(one.msgs.map((i) => wire.msgs[i]!.seq), [1, 2], 'each message once per gateway');
    assert.deepEqual(one.to, [
      { user: 'bob', m: 0 },
      { user: 'alice', m: 0, skip: 'a1' },
      { user: 'bob', m: 1 },
    ]);
    assert.deepEqual(back.get('gw:local:2'), { msgs: [0], to: [{ user: 'carol', m: 0 }] });
    assert.deepEqual(back.get('gw:weur:1'), { msgs: [1], to: [{ user: 'bob', m: 0 }] });
  });

  it('refuses an index past the messages', () => {
    const r = DeliverRequest.safeParse({ msgs: [msg(1)], to: [{ user: 'bob', gw: 'gw:local:0', m: 1 }] });
    assert.equal(r.success, false);
  });
});

describe('fastDeliverRequest (the hand check of /internal/deliver bodies)', () => {
  const id64 = 'u'.repeat(64);
  const bodies: unknown[] = [
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: 'bob', m: 0 }] },
    { msgs: [msg(1), msg(2)], to: [{ gw: 'gw:local:3', user: 'bob', m: 1, skip: 'd1', extra: 1 }, { gw: 'gw:local:3', user: 'al.ice_-', m: 0 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: id64, m: 0 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: id64 + 'u', m: 0 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: '_bob', m: 0 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: 'bob', m: 1 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: 'bob', m: -1 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: 'bob', m: 0.5 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: 'bob', m: '0' }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: 'bob', m: 0, skip: '' }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local:3', user: 'bob', m: 0, skip: 7 }] },
    { msgs: [msg(1)], to: [null] },
    { msgs: [msg(1)], to: [{ user: 'bob', m: 0 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:LOCAL:1', user: 'bob', m: 0 }] },
    { msgs: [msg(1)], to: [{ gw: 'gw:local', user: 'bob', m: 0 }] },
    { msgs: [msg(1)], to: [{ gw: 7, user: 'bob', m: 0 }] },
    { msgs: [msg(1)], to: [[]] },
    { msgs: [msg(1)], to: [] },
    { msgs: [], to: [{ gw: 'gw:local:3', user: 'bob', m: 0 }] },
    { msgs: [{ ...msg(1), seq: -2 }], to: [{ gw: 'gw:local:3', user: 'bob', m: 0 }] },
    { msgs: [msg(1)] },
    { to: [{ gw: 'gw:local:3', user: 'bob', m: 0 }] },
    { msgs: [msg(1)], to: Array.from({ length: 20_001 }, () => ({ gw: 'gw:local:3', user: 'bob', m: 0 })) },
    { msgs: [msg(1)], to: Array.from({ length: 20_000 }, () => ({ gw: 'gw:local:3', user: 'bob', m: 0 })) },
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
    assert.deepEqual(parseDeliverRequest(JSON.stringify({ msgs: [msg(1)], to: [{ user: 'bob', gw: 'gw:local:0', m: 0 }] })).to, [{ user: 'bob', gw: 'gw:local:0', m: 0 }]);
  });
});
