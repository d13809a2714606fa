import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCursor, RouteOp } from '@switchboard/protocol';
import { RegionOps } from '../../src/gateway/region-ops.ts';

const up = (user: string, conn = 1): RouteOp => ({ op: 'up', user, device: 'd', edge: 'http://e', gw: 'gw:local:0', conn });
const cursor = (conv: string, seq: number): DeviceCursor => ({ user: 'u', device: 'd', conv, seq });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A region that records every call; `fail` makes every call throw. */
function region(fail = false) {
  const calls: { path: string; body: any }[] = [];
  return {
    calls,
    call: async <T>(path: string, body: any): Promise<T> => {
      calls.push({ path, body });
      await sleep(1);
      if (fail) throw new Error('region down');
      return (body.routes.length ? { epoch: 'e1' } : {}) as T;
    },
  };
}

describe('RegionOps (a gateway’s batched calls to the region)', () => {
  it('sends what was queued in one turn together, at once, in one call, each kind in order', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call });
    ops.route(up('a'));
    ops.presenceOp({ op: 'connect', user: 'a', device: 'd' });
    ops.route({ ...up('a'), op: 'down' });
    ops.writeCursors([cursor('c', 3)]);
    ops.presenceOp({ op: 'down', user: 'a', device: 'd' });
    assert.equal(r.calls.length, 0, 'nothing leaves within the turn that queued it');
    await sleep(20);
    assert.deepEqual(r.calls.map((c) => c.path), ['/internal/gateway']);
    const body = r.calls[0]!.body;
    assert.deepEqual(body.routes.map((o: RouteOp) => o.op), ['up', 'down']);
    assert.deepEqual(body.presence.map((o: { op: string }) => o.op), ['connect', 'down']);
    assert.deepEqual(body.cursors, [cursor('c', 3)]);
    assert.equal(ops.pending, 0);
  });

  it('while a batch is on its way, what is queued waits and leaves with the next, as soon as it is answered', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call });
    ops.route(up('a'));
    await sleep(0); // the first batch leaves
    for (const u of ['b', 'c', 'd']) ops.route(up(u));
    await ops.whenSent();
    assert.deepEqual(r.calls.map((c) => c.body.routes.map((o: RouteOp) => o.user)), [['a'], ['b', 'c', 'd']]);
  });

  it('splits a large batch within the region’s limits', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call });
    for (let i = 0; i < 12_000; i++) ops.route(up(`u${i}`));
    await ops.flush();
    assert.deepEqual(r.calls.map((c) => c.body.routes.length), [5000, 5000, 2000]);
    assert.deepEqual(r.calls.flatMap((c) => c.body.routes.map((o: RouteOp) => o.user)), Array.from({ length: 12_000 }, (_, i) => `u${i}`));
  });

  it('whenSent resolves once the batch that carried what was queued was answered, and flush sends at once', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call });
    ops.route(up('a'));
    let sent = false;
    const done = ops.whenSent().then(() => (sent = true));
    await sleep(0);
    assert.equal(sent, false, 'not before its batch was answered');
    await done;
    assert.equal(r.calls.length, 1);
    ops.presenceOp({ op: 'connect', user: 'b', device: 'd' });
    await ops.flush();
    assert.equal(r.calls.length, 2, 'flush does not wait for a turn of the event loop');
    await ops.whenSent();
  });

  it('one flush at a time: what is queued while one is sending goes with the next', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call });
    ops.route(up('a'));
    const first = ops.flush();
    await sleep(0); // the first is sending now
    ops.route(up('b'));
    const second = ops.flush();
    await Promise.all([first, second]);
    assert.deepEqual(r.calls.map((c) => c.body.routes.map((o: RouteOp) => o.user)), [['a'], ['b']]);
  });

  it('reports the routes epoch', async () => {
    const r = region();
    const epochs: string[] = [];
    const ops = new RegionOps({ call: r.call, onEpoch: (e) => epochs.push(e) });
    ops.route(up('a'));
    await ops.flush();
    assert.deepEqual(epochs, ['e1']);
  });

  it('reports a failed batch and hands back the cursors it carried', async () => {
    const r = region(true);
    const errors: [string, number][] = [];
    const failed: DeviceCursor[] = [];
    const ops = new RegionOps({ call: r.call, onError: (p, n) => errors.push([p, n]), onCursorsFailed: (c) => failed.push(...c) });
    ops.route(up('a'));
    ops.presenceOp({ op: 'beat', user: 'a', device: 'd', age: 0 });
    ops.writeCursors([cursor('c', 1), cursor('d', 2)]);
    await ops.flush();
    assert.deepEqual(errors, [['/internal/gateway', 4]]);
    assert.deepEqual(failed, [cursor('c', 1), cursor('d', 2)]);
  });
});
