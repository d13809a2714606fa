import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Delivery, Msg } from '@switchboard/protocol';
import { LivePush, type LiveTarget } from '../src/live-push.ts';

const m = (seq: number, from = 'ann'): Msg => ({ t: 'msg', conv: 'c', seq, cmid: `c${seq}`, from, dev: 'phone', ts: seq, body: `b${seq}` });

/** SessionDOs that record what they were handed; `gate` holds their answers until released. */
function sessions(opts: { devices?: Record<string, string[]>; failing?: Set<string> } = {}) {
  const got = new Map<string, Delivery[][]>();
  let release: () => void = () => {};
  let gate: Promise<void> | null = null;
  const target = (user: string): LiveTarget => ({
    async deliver(deliveries) {
      got.set(user, [...(got.get(user) ?? []), deliveries]);
      if (gate) await gate;
      if (opts.failing?.has(user)) throw new Error('session unreachable');
      return { sockets: 1, devices: opts.devices?.[user] ?? ['phone'] };
    },
  });
  return {
    got,
    target,
    hold() {
      gate = new Promise((r) => (release = r));
    },
    release() {
      gate = null;
      release();
    },
  };
}

describe('LivePush', () => {
  it('hands each message to every member, skipping only the sending device', async () => {
    const s = sessions();
    const live = new LivePush({ target: s.target, onError: assert.fail });
    live.push(m(1), ['ann', 'bob']);
    await live.settled(1000);
    assert.deepEqual(s.got.get('bob'), [[{ user: 'bob', msg: m(1) }]]);
    assert.deepEqual(s.got.get('ann'), [[{ user: 'ann', msg: m(1), skipDevice: 'phone' }]]);
    assert.deepEqual(live.delivered(1).map((d) => d.user).sort(), ['ann', 'bob']);
    assert.deepEqual(live.delivered(1).find((d) => d.user === 'bob')?.devices, ['phone']);
  });

  it('sends a batch only after the previous one was answered, in seq order', async () => {
    const s = sessions();
    const live = new LivePush({ target: s.target, onError: assert.fail });
    s.hold();
    live.push(m(1), ['bob']);
    live.push(m(2), ['bob']);
    live.push(m(3), ['bob']);
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(s.got.get('bob')!.map((b) => b.map((d) => d.msg.seq)), [[1]], 'seq 2 waits for seq 1');
    s.release();
    await live.settled(1000);
    assert.deepEqual(s.got.get('bob')!.map((b) => b.map((d) => d.msg.seq)), [[1], [2, 3]], 'what queued meanwhile goes together');
  });

  it('leaves to the region the members it could not reach or who had no device online', async () => {
    const errors: string[] = [];
    const s = sessions({ devices: { bob: ['phone', 'laptop'], cal: [] }, failing: new Set(['dan']) });
    const live = new LivePush({ target: s.target, onError: (user) => errors.push(user) });
    live.push(m(1), ['bob', 'cal', 'dan']);
    await live.settled(1000);
    assert.deepEqual(live.delivered(1), [{ user: 'bob', devices: ['phone', 'laptop'] }], 'the devices each member had online');
    assert.deepEqual(errors, ['dan']);
    live.forget(1);
    assert.deepEqual(live.delivered(1), [], 'forgotten once the region has it');
  });

  it("skips the call to a sender whose only device online is the sending one", async () => {
    const s = sessions({ devices: { ann: ['phone'] } });
    const live = new LivePush({ target: s.target, onError: assert.fail });
    live.push(m(1), ['ann', 'bob']);
    await live.settled(1000);
    live.push(m(2), ['ann', 'bob']);
    await live.settled(1000);
    assert.equal(s.got.get('ann')!.length, 1, 'asked once, then known');
    assert.equal(s.got.get('bob')!.length, 2);
    assert.deepEqual(live.delivered(2).find((d) => d.user === 'ann'), { user: 'ann', devices: ['phone'] });
    live.push(m(3, 'bob'), ['ann', 'bob']);
    await live.settled(1000);
    assert.equal(s.got.get('ann')!.length, 2, 'as a recipient she is always called');
  });

  it('refuses past its queue bound instead of growing', async () => {
    const s = sessions();
    const live = new LivePush({ target: s.target, onError: assert.fail, maxQueued: 2 });
    s.hold();
    assert.equal(live.push(m(1), ['bob']), true); // taken by the pump at once
    assert.equal(live.push(m(2), ['bob']), true);
    assert.equal(live.push(m(3), ['bob']), true);
    assert.equal(live.push(m(4), ['bob']), false, 'two are queued behind the one in flight');
    assert.equal(live.pending, 2);
    const t0 = Date.now();
    await live.settled(50);
    assert.ok(Date.now() - t0 < 1000, 'settled gives up after its timeout');
    s.release();
    await live.settled(1000);
    assert.deepEqual(live.delivered(4), []);
    assert.deepEqual(live.delivered(3), [{ user: 'bob', devices: ['phone'] }]);
  });
});
