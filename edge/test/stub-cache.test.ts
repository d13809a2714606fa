import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { StubCache } from '../src/stub-cache.ts';

/** A lookup that makes a distinct stub per call and counts the calls. */
function counting() {
  const made: string[] = [];
  return { made, lookup: (name: string) => (made.push(name), { name, n: made.length }) };
}

describe('StubCache', () => {
  it('makes one stub per name and hands it out again', () => {
    const c = counting();
    const cache = new StubCache(c.lookup);
    const a = cache.get('ann');
    assert.equal(cache.get('ann'), a);
    assert.notEqual(cache.get('bob'), a);
    assert.deepEqual(c.made, ['ann', 'bob']);
  });

  it('drops a stub that failed: the next get makes a new one', () => {
    const c = counting();
    const cache = new StubCache(c.lookup);
    const first = cache.get('ann');
    cache.drop('ann');
    const second = cache.get('ann');
    assert.notEqual(second, first);
    assert.deepEqual(c.made, ['ann', 'ann']);
    cache.drop('nobody');
    assert.equal(cache.size, 1);
  });

  it('keeps at most max stubs, dropping the least recently used', () => {
    const c = counting();
    const cache = new StubCache(c.lookup, 2);
    const ann = cache.get('ann');
    cache.get('bob');
    assert.equal(cache.get('ann'), ann); // ann is now the most recent
    cache.get('cy'); // evicts bob
    assert.equal(cache.size, 2);
    assert.equal(cache.get('ann'), ann);
    cache.get('bob');
    assert.deepEqual(c.made, ['ann', 'bob', 'cy', 'bob']);
  });
});
