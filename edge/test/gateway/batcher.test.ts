import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Batcher } from '../../src/gateway/batcher.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('Batcher (calls that arrive together travel as one)', () => {
  it('answers each call with its own result; calls of one turn go together, later ones with the next batch', async () => {
    const batches: number[][] = [];
    let release: () => void = () => {};
    const b = new Batcher<number, string>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      return items.map((x) => `a${x}`);
    }, 10);
    const first = [b.call(1), b.call(2)];
    await sleep(5);
    const second = [b.call(3), b.call(4), b.call(5)];
    await sleep(5);
    assert.deepEqual(batches, [[1, 2]], 'the second batch waits for the first');
    release();
    assert.deepEqual(await Promise.all([...first, ...second]), ['a1', 'a2', 'a3', 'a4', 'a5']);
    assert.deepEqual(batches, [[1, 2], [3, 4, 5]]);
  });

  it('cuts batches at their maximum', async () => {
    const batches: number[][] = [];
    const b = new Batcher<number, number>(async (items) => (batches.push(items), items), 2);
    assert.deepEqual(await Promise.all([1, 2, 3, 4, 5].map((x) => b.call(x))), [1, 2, 3, 4, 5]);
    assert.deepEqual(batches, [[1, 2], [3, 4], [5]]);
  });

  it('a failed batch fails its calls only', async () => {
    let n = 0;
    const b = new Batcher<number, number>(async (items) => {
      if (n++ === 0) throw new Error('region down');
      return items;
    }, 2);
    const results = await Promise.allSettled([1, 2, 3].map((x) => b.call(x)));
    assert.deepEqual(results.map((r) => r.status), ['rejected', 'rejected', 'fulfilled']);
  });

  it('refuses an answer that does not match its batch', async () => {
    const b = new Batcher<number, number>(async () => [1], 5);
    await assert.rejects(Promise.all([b.call(1), b.call(2)]), /expected 2 answers, got 1/);
  });
});
