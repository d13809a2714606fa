import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FLOOD_REFUSALS, FloodGuard } from '../../src/limits/flood-guard.ts';

describe('FloodGuard', () => {
  it('closes a socket refused FLOOD_REFUSALS times in a row; a frame that passes ends the streak', () => {
    const g = new FloodGuard<object>();
    const [a, b] = [{}, {}];
    for (let i = 1; i < FLOOD_REFUSALS; i++) assert.equal(g.refused(a), false);
    g.passed(a);
    for (let i = 1; i < FLOOD_REFUSALS; i++) assert.equal(g.refused(a), false, 'the streak started again');
    assert.equal(g.refused(b), false, 'sockets are counted apart');
    assert.equal(g.flooding(a), false);
    assert.equal(g.refused(a), true);
    assert.equal(g.flooding(a), true);
    assert.equal(g.flooding(b), false);
  });
});
