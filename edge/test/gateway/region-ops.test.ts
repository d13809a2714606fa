import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceCursor, RouteOp } from '@switchboard/protocol';
import { RegionOps } from '../../src/gateway/region-ops.ts';

const up = (user: string, conn = 1): RouteOp => ({ op: 'up', user, device: 'd', edge: 'http://e', gw: 'gw:local:0', conn });
const cursor = (conv: string, seq: number): DeviceCursor => ({ user: 'u', device: 'd', conv, seq });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A region that records every call; `fail` makes calls to a path throw. */
function region(fail: Set<string> = new Set()) {
  const calls: { path: string; body: any }[] = [];
  return {
    calls,
    call: async <T>(path: string, body: unknown): Promise<T> => {
      calls.push({ path, body });
      await sleep(1);
      if (fail.has(path)) throw new Error('region down');
      return (path === '/internal/routes' ? { epoch: 'e1' } : {}) as T;
    },
  };
}

describe('RegionOps (a gateway’s batched calls to the region)', () => {
  it('sends what was queued within the delay together, one call per kind, in order', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call, delayMs: 20 });
    ops.route(up('a'));
    ops.presenceOp({ op: 'connect', user: 'a', device: 'd' });
    ops.route({ ...up('a'), op: 'down' });
    ops.writeCursors([cursor('c', 3)]);
    ops.presenceOp({ op: 'down', user: 'a', device: 'd' });
    assert.equal(r.calls.length, 0, 'nothing leaves before the delay');
    await sleep(60);
    assert.deepEqual(r.calls.map((c) => c.path).sort(), ['/internal/cursors', '/internal/presence', '/internal/routes']);
    const by = (p: string) => r.calls.find((c) => c.path === p)!.body;
    assert.deepEqual(by('/internal/routes').ops.map((o: RouteOp) => o.op), ['up', 'down']);
    assert.deepEqual(by('/internal/presence').ops.map((o: { op: string }) => o.op), ['connect', 'down']);
    assert.deepEqual(by('/internal/cursors'), { cursors: [cursor('c', 3)] });
    assert.equal(ops.pending, 0);
  });

  it('splits a large batch within the region’s limits', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call, delayMs: 1 });
    for (let i = 0; i < 12_000; i++) ops.route(up(`u${i}`));
    await ops.flush();
    assert.deepEqual(r.calls.map((c) => c.body.ops.length), [5000, 5000, 2000]);
    assert.deepEqual(r.calls.flatMap((c) => c.body.ops.map((o: RouteOp) => o.user)), Array.from({ length: 12_000 }, (_, i) => `u${i}`));
  });

  it('whenSent resolves with the batch that carried what was queued, and flush sends at once', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call, delayMs: 30 });
    ops.route(up('a'));
    let sent = false;
    const done = ops.whenSent().then(() => (sent = true));
    await sleep(5);
    assert.equal(sent, false, 'not before its batch left');
    await done;
    assert.equal(r.calls.length, 1);
    ops.presenceOp({ op: 'connect', user: 'b', device: 'd' });
    await ops.flush();
    assert.equal(r.calls.length, 2, 'flush does not wait for the delay');
    await ops.whenSent();
  });

  it('one flush at a time: what is queued while one is sending goes with the next', async () => {
    const r = region();
    const ops = new RegionOps({ call: r.call, delayMs: 1000 });
    ops.route(up('a'));
    const first = ops.flush();
    await sleep(0); // the first is sending now
    ops.route(up('b'));
    const second = ops.flush();
    await Promise.all([first, second]);
    assert.deepEqual(r.calls.map((c) => c.body.ops.map((o: RouteOp) => o.user)), [['a'], ['b']]);
  });

  it('reports the routes epoch, reports failures, and hands back cursors whose write failed', async () => {
    const r = region(new Set(['/internal/cursors', '/internal/presence']));
    const epochs: string[] = [];
    const errors: string[] = [];
    const failed: DeviceCursor[] = [];
    const ops = new RegionOps({ call: r.call, delayMs: 1, onEpoch: (e) => epochs.push(e), onError: (p) => errors.push(p), onCursorsFailed: (c) => failed.push(...c) });
    ops.route(up('a'));
    ops.presenceOp({ op: 'beat', user: 'a', device: 'd', age: 0 });
    ops.writeCursors([cursor('c', 1), cursor('d', 2)]);
    await ops.flush();
    assert.deepEqual(epochs, ['e1']);
    assert.deepEqual(errors.sort(), ['/internal/cursors', '/internal/presence']);
    assert.deepEqual(failed, [cursor('c', 1), cursor('d', 2)]);
  });
});
