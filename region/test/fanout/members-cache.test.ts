import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MembersCache } from '../../src/fanout/members-cache.ts';
import { membersAt, type StoredConversation, type StoredMember } from '../../src/storage/storage.ts';

function store() {
  const roster: StoredMember[] = [
    { user: 'a', role: 'owner', joinedSeq: 0, leftSeq: null },
    { user: 'b', role: 'member', joinedSeq: 0, leftSeq: null },
  ];
  let loads = 0;
  const storage = {
    async getConversation(id: string): Promise<StoredConversation | null> {
      loads++;
      if (id !== 'c') return null;
      const copy = roster.map((m) => ({ ...m }));
      return { id, title: null, creator: 'a', createdAt: 0, members: copy.filter((m) => m.leftSeq === null).map((m) => m.user), roster: copy };
    },
  };
  return { roster, storage, loads: () => loads };
}

describe('MembersCache', () => {
  it('serves a version from cache and reloads on any other version, so a change is never missed', async () => {
    const s = store();
    const cache = new MembersCache(s.storage);
    assert.deepEqual(membersAt((await cache.roster('c', 0))!, 1), ['a', 'b']);
    await cache.roster('c', 0);
    assert.equal(s.loads(), 1, 'same version: cached');
    s.roster.push({ user: 'n', role: 'member', joinedSeq: 4, leftSeq: null });
    s.roster[1]!.leftSeq = 4;
    assert.deepEqual(membersAt((await cache.roster('c', 4))!, 5), ['a', 'n'], 'new version: reloaded');
    assert.equal(s.loads(), 2);
    assert.deepEqual(membersAt((await cache.roster('c', 4))!, 4), ['a', 'b', 'n'], 'the removed member still gets their removal');
    assert.deepEqual(membersAt((await cache.roster('c', 4))!, 3), ['a', 'b'], 'an earlier seq still goes to the members of then');
  });

  it('never caches an event without a version, and answers null for an unknown conversation', async () => {
    const s = store();
    const cache = new MembersCache(s.storage);
    await cache.roster('c', undefined);
    await cache.roster('c', undefined);
    assert.equal(s.loads(), 2);
    assert.equal(await cache.roster('nope', 1), null);
  });

  it('stays within its size bound', async () => {
    const s = store();
    const cache = new MembersCache(s.storage, 1);
    await cache.roster('c', 1);
    await cache.roster('nope', 1);
    await cache.roster('c', 1);
    assert.equal(s.loads(), 2, 'an unknown conversation is not cached and does not evict');
  });
});
