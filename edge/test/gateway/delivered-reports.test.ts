import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliveredReports } from '../../src/gateway/delivered-reports.ts';

const sorted = (m: Map<string, { user: string; seq: number }[]>) =>
  [...m].map(([conv, list]) => [conv, [...list].sort((a, b) => (a.user < b.user ? -1 : 1))] as const).sort(([a], [b]) => (a < b ? -1 : 1));

describe("DeliveredReports (a gateway's delivered positions for ConversationDOs)", () => {
  it('reports the highest ack per conversation and user once, all users of a conversation together', () => {
    const d = new DeliveredReports();
    d.note('c1', 'ann', 3);
    d.note('c1', 'ann', 5);
    d.note('c1', 'ann', 4);
    d.note('c1', 'bob', 2);
    d.note('c2', 'ann', 1);
    assert.deepEqual(sorted(d.take()), [
      ['c1', [{ user: 'ann', seq: 5 }, { user: 'bob', seq: 2 }]],
      ['c2', [{ user: 'ann', seq: 1 }]],
    ]);
    assert.equal(d.take().size, 0);
    d.note('c1', 'ann', 5);
    d.note('c1', 'ann', 2);
    assert.equal(d.take().size, 0, 'nothing above what was reported');
    d.note('c1', 'ann', 6);
    assert.deepEqual(sorted(d.take()), [['c1', [{ user: 'ann', seq: 6 }]]]);
  });

  it('a failed report is pending again', () => {
    const d = new DeliveredReports();
    d.note('c1', 'ann', 3);
    const sent = d.take().get('c1')!;
    d.failed('c1', sent);
    assert.deepEqual(sorted(d.take()), [['c1', [{ user: 'ann', seq: 3 }]]]);
  });

  it('holds a quiet conversation until its quiet time passes, then reports the newest values', () => {
    const d = new DeliveredReports();
    d.note('big', 'ann', 1);
    assert.equal(d.take(1000).size, 1);
    d.answered('big', 30_000, 1000);
    d.note('big', 'ann', 2);
    d.note('big', 'ann', 5);
    d.note('big', 'bob', 4);
    d.note('small', 'ann', 3);
    assert.deepEqual([...d.take(2000).keys()], ['small']);
    assert.equal(d.nextQuietEnd(), 31_000);
    assert.deepEqual(sorted(d.take(31_001)), [['big', [{ user: 'ann', seq: 5 }, { user: 'bob', seq: 4 }]]]);
    d.answered('big', 0, 31_001);
    d.note('big', 'ann', 6);
    assert.deepEqual([...d.take(31_002).keys()], ['big']);
  });
});
