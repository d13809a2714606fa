import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Msg } from '@switchboard/protocol';
import { LivePush, type LiveTarget } from '../../src/conversation/live-push.ts';
import { MemberGateways } from '../../src/conversation/member-gateways.ts';
import type { GatewayBatch } from '../../src/gateway/api.ts';

const m = (seq: number, from = 'ann'): Msg => ({ t: 'msg', conv: 'c', seq, cmid: `c${seq}`, from, dev: 'phone', ts: seq, body: `b${seq}` });

/** Members on gateways by a fixed table (unlisted: gw:local:0). */
const placed = (table: Record<string, string>) => (members: readonly string[]) => {
  const out = new Map<string, string[]>();
  for (const u of members) {
    const gw = table[u] ?? 'gw:local:0';
    out.set(gw, [...(out.get(gw) ?? []), u]);
  }
  return out;
};

/** Gateways that record what they were handed; `gate` holds their answers until released. */
function gateways(opts: { sockets?: Record<string, string[]>; failing?: Set<string>; upTo?: number } = {}) {
  const got = new Map<string, GatewayBatch[]>();
  let release: () => void = () => {};
  let gate: Promise<void> | null = null;
  const target = (gw: string): LiveTarget => ({
    async deliver(name, batch) {
      assert.equal(name, gw, 'a gateway is told its own name');
      got.set(gw, [...(got.get(gw) ?? []), batch]);
      if (gate) await gate;
      if (opts.failing?.has(gw)) throw new Error('gateway unreachable');
      const users = new Set(batch.to.map((t) => t.user));
      const devices = (u: string) => opts.sockets?.[u] ?? ['phone'];
      const missed = [...users].filter((u) => devices(u).length === 0);
      const skipOnly = batch.to.filter((t) => t.skip !== undefined && devices(t.user).every((d) => d === t.skip) && devices(t.user).length > 0).map((t) => t.user);
      return { upTo: opts.upTo ?? 7, missed, skipOnly: [...new Set(skipOnly)], sockets: 1 };
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

/** What each gateway received: per call, [seq, user, skip?] per recipient. */
const calls = (batches: GatewayBatch[] | undefined) => (batches ?? []).map((b) => b.to.map((t) => [b.msgs[t.m]!.seq, t.user, t.skip]));

describe('LivePush (one call per gateway)', () => {
  it('hands each message once to each gateway with every member there, skipping only the sending device', async () => {
    const g = gateways();
    const live = new LivePush({ target: g.target, group: placed({ cat: 'gw:local:1' }), onError: assert.fail });
    live.push(m(1), ['ann', 'bob', 'cat']);
    await live.settled(1000);
    assert.deepEqual(calls(g.got.get('gw:local:0')), [[[1, 'ann', 'phone'], [1, 'bob', undefined]]]);
    assert.deepEqual(calls(g.got.get('gw:local:1')), [[[1, 'cat', undefined]]]);
    const batch = g.got.get('gw:local:0')![0]!;
    assert.equal(batch.msgs.length, 1, 'the message travels once per call');
    assert.deepEqual(JSON.parse(batch.msgs[0]!.text), m(1), 'serialised once, as the frame');
    assert.deepEqual(
      live.reached(1).sort((a, b) => (a.gw < b.gw ? -1 : 1)),
      [
        { gw: 'gw:local:0', upTo: 7 },
        { gw: 'gw:local:1', upTo: 7 },
      ],
    );
  });

  it('per gateway, sends a batch only after the previous one was answered, in seq order', async () => {
    const g = gateways();
    const live = new LivePush({ target: g.target, group: placed({}), onError: assert.fail });
    g.hold();
    live.push(m(1), ['bob']);
    live.push(m(2), ['bob']);
    live.push(m(3), ['bob']);
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(calls(g.got.get('gw:local:0')), [[[1, 'bob', undefined]]], 'seq 2 waits for seq 1');
    g.release();
    await live.settled(1000);
    assert.deepEqual(
      calls(g.got.get('gw:local:0')),
      [[[1, 'bob', undefined]], [[2, 'bob', undefined], [3, 'bob', undefined]]],
      'what queued meanwhile goes together',
    );
  });

  it('a slow gateway does not hold the others back', async () => {
    const g = gateways();
    const live = new LivePush({ target: g.target, group: placed({ cat: 'gw:local:1' }), onError: assert.fail });
    g.hold();
    live.push(m(1), ['bob', 'cat']);
    await new Promise((r) => setTimeout(r, 5));
    g.release();
    live.push(m(2), ['bob', 'cat']);
    await live.settled(1000);
    assert.equal(g.got.get('gw:local:1')!.length >= 1, true);
    assert.deepEqual(live.reached(2).length, 2);
  });

  it('leaves to the region the gateways it could not reach, and says when members were missed', async () => {
    const errors: string[] = [];
    let missed = 0;
    const g = gateways({ sockets: { cal: [] }, failing: new Set(['gw:local:2']) });
    const live = new LivePush({
      target: g.target,
      group: placed({ cal: 'gw:local:1', dan: 'gw:local:2' }),
      onError: (gw) => errors.push(gw),
      onMissed: () => missed++,
    });
    live.push(m(1), ['bob', 'cal', 'dan']);
    await live.settled(1000);
    assert.deepEqual(live.reached(1).map((r) => r.gw).sort(), ['gw:local:0', 'gw:local:1'], 'a failed gateway gives no hint');
    assert.deepEqual(errors, ['gw:local:2']);
    assert.equal(missed, 2, 'cal has no socket; dan\'s gateway failed');
    live.forget(1);
    assert.deepEqual(live.reached(1), [], 'forgotten once the region has it');
  });

  it('skips the call to a sender whose only socket on their gateway is the sending one', async () => {
    const g = gateways({ sockets: { ann: ['phone'] } });
    const live = new LivePush({ target: g.target, group: placed({ bob: 'gw:local:1' }), onError: assert.fail });
    live.push(m(1), ['ann', 'bob']);
    await live.settled(1000);
    live.push(m(2), ['ann', 'bob']);
    await live.settled(1000);
    assert.equal(g.got.get('gw:local:0')!.length, 1, 'asked once, then known');
    assert.equal(g.got.get('gw:local:1')!.length, 2);
    live.push(m(3, 'bob'), ['ann', 'bob']);
    await live.settled(1000);
    assert.equal(g.got.get('gw:local:0')!.length, 2, 'as a recipient she is always called');
  });

  it('refuses past a gateway\'s queue bound instead of growing', async () => {
    const g = gateways();
    const live = new LivePush({ target: g.target, group: placed({}), onError: assert.fail, maxQueued: 2 });
    g.hold();
    assert.equal(live.push(m(1), ['bob']), true); // taken by the pump at once
    assert.equal(live.push(m(2), ['bob']), true);
    assert.equal(live.push(m(3), ['bob']), true);
    assert.equal(live.push(m(4), ['bob']), false, 'two are queued behind the one in flight');
    assert.equal(live.pending, 2);
    const t0 = Date.now();
    await live.settled(50);
    assert.ok(Date.now() - t0 < 1000, 'settled gives up after its timeout');
    g.release();
    await live.settled(1000);
    assert.deepEqual(live.reached(4), []);
    assert.deepEqual(live.reached(3), [{ gw: 'gw:local:0', upTo: 7 }]);
  });
});

describe('MemberGateways', () => {
  it('places members by hash until they call from a gateway, and groups them per gateway', () => {
    const w = new MemberGateways('local', 4);
    const members = ['ann', 'bob', 'cat', 'dan'];
    const before = w.group(members);
    assert.equal([...before.values()].flat().length, 4);
    for (const gw of before.keys()) assert.match(gw, /^gw:local:[0-3]$/);
    assert.equal(w.group(members), before, 'the same members array: the same answer');
    const bob = w.of('bob');
    w.learn('ann', 'gw:weur:2');
    w.learn('bob', 'not a gateway');
    const after = w.group(members);
    assert.deepEqual(after.get('gw:weur:2'), ['ann']);
    assert.equal(w.of('bob'), bob, 'a bad name is ignored');
  });
});
