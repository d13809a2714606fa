import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Msg } from '@switchboard/protocol';
import { membersAt, type Storage, type StoredConversation } from '../../src/storage/storage.ts';
import { runId } from '../engines.ts';

const T0 = 1_764_000_000_000;

function msg(conv: string, seq: number): Msg {
  return { t: 'msg', conv, seq, cmid: `cm-${seq}`, from: `user${seq % 3}`, dev: `dev${seq % 2}`, ts: T0 + seq * 1_000 + (seq % 7), body: `body ${seq} — ünïcödé ✓` };
}
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const seqs = (list: Msg[]) => list.map((m) => m.seq);

/**
 * The Storage contract (src/storage.ts), for any implementation. `make` returns a new, not yet
 * initialized instance over the same store each time it is called (the suite opens a second one
 * to check that data is shared and that init is repeatable); the suite calls init and close.
 * Conversation ids are unique per run, so a shared store is fine.
 */
export function storageContract(name: string, make: () => Promise<Storage>): void {
  describe(`storage contract: ${name}`, () => {
    let storage: Storage;
    const run = runId();
    let n = 0;
    const conv = () => `c${run}_${++n}`;

    async function append(c: string, from: number, to: number, batch = 250): Promise<void> {
      for (let s = from; s <= to; s += batch) await storage.appendMessages(range(s, Math.min(to, s + batch - 1)).map((q) => msg(c, q)));
    }

    before(async () => {
      storage = await make();
      await storage.init();
    });
    after(async () => {
      await storage.close();
    });

    it('ping resolves', async () => {
      await storage.ping();
    });

    it('stores messages and reads them back field for field', async () => {
      const c = conv();
      await storage.appendMessages([msg(c, 1), msg(c, 2), msg(c, 3)]);
      assert.deepEqual(await storage.readAfter(c, 0, 10), [msg(c, 1), msg(c, 2), msg(c, 3)]);
    });

    it('appending the same messages again leaves exactly one row each', async () => {
      const c = conv();
      await storage.appendMessages(range(1, 5).map((s) => msg(c, s)));
      await storage.appendMessages(range(1, 5).map((s) => msg(c, s)));
      await storage.appendMessages(range(4, 8).map((s) => msg(c, s))); // overlapping retry
      await storage.appendMessages([msg(c, 3)]);
      assert.deepEqual(await storage.readAfter(c, 0, 100), range(1, 8).map((s) => msg(c, s)));
      assert.deepEqual(seqs(await storage.readBefore(c, Infinity, 100)), range(1, 8).reverse());
    });

    it('appendMessages of an empty batch is a no-op', async () => {
      await storage.appendMessages([]);
    });

    it('readAfter is ascending, exclusive of after, and stops at limit', async () => {
      const c = conv();
      await append(c, 1, 20);
      assert.deepEqual(seqs(await storage.readAfter(c, 5, 4)), [6, 7, 8, 9]);
      assert.deepEqual(seqs(await storage.readAfter(c, 0, 3)), [1, 2, 3]);
      assert.deepEqual(seqs(await storage.readAfter(c, 17, 10)), [18, 19, 20]);
      assert.deepEqual(await storage.readAfter(c, 20, 10), []);
      assert.deepEqual(await storage.readAfter(c, 1_000_000, 10), []);
    });

    it('readBefore is descending, exclusive of before, and stops at limit', async () => {
      const c = conv();
      await append(c, 1, 20);
      assert.deepEqual(seqs(await storage.readBefore(c, 6, 3)), [5, 4, 3]);
      assert.deepEqual(seqs(await storage.readBefore(c, 3, 10)), [2, 1]);
      assert.deepEqual(await storage.readBefore(c, 1, 10), []);
      assert.deepEqual(seqs(await storage.readBefore(c, 21, 2)), [20, 19]);
      assert.deepEqual(seqs(await storage.readBefore(c, 1_000_000, 2)), [20, 19]);
    });

    it('readBefore(Infinity) and readBefore(MAX_SAFE_INTEGER) find the newest messages', async () => {
      const c = conv();
      await append(c, 1, 30);
      assert.deepEqual(seqs(await storage.readBefore(c, Infinity, 5)), [30, 29, 28, 27, 26]);
      assert.deepEqual(seqs(await storage.readBefore(c, Number.MAX_SAFE_INTEGER, 5)), [30, 29, 28, 27, 26]);
    });

    it('an unknown conversation reads as empty', async () => {
      const c = conv();
      assert.deepEqual(await storage.readAfter(c, 0, 10), []);
      assert.deepEqual(await storage.readBefore(c, Infinity, 10), []);
      assert.deepEqual(await storage.readBefore(c, 10, 10), []);
    });

    it('conversations do not see each other’s messages', async () => {
      const a = conv();
      const b = conv();
      await append(a, 1, 5);
      await append(b, 1, 3);
      assert.deepEqual(await storage.readAfter(b, 0, 100), range(1, 3).map((s) => msg(b, s)));
      assert.deepEqual(seqs(await storage.readBefore(a, Infinity, 100)), [5, 4, 3, 2, 1]);
    });

    describe('across internal partitions (2,500 messages written in batches)', () => {
      const c = conv();
      const N = 2_500;
      before(async () => {
        await append(c, 1, N, 250);
      });

      it('readAfter pages walk every message once, in order', async () => {
        const all: number[] = [];
        for (let after = 0; ; ) {
          const page = await storage.readAfter(c, after, 101);
          if (page.length === 0) break;
          all.push(...seqs(page));
          after = page[page.length - 1]!.seq;
        }
        assert.deepEqual(all, range(1, N));
      });

      it('readBefore pages from the newest walk every message once, newest first', async () => {
        const all: number[] = [];
        for (let before = Infinity; ; ) {
          const page = await storage.readBefore(c, before, 101);
          if (page.length === 0) break;
          all.push(...seqs(page));
          before = page[page.length - 1]!.seq;
        }
        assert.deepEqual(all, range(1, N).reverse());
      });

      it('a single read spans boundaries in either direction', async () => {
        assert.deepEqual(seqs(await storage.readAfter(c, 990, 20)), range(991, 1010));
        assert.deepEqual(seqs(await storage.readAfter(c, 995, 1_010)), range(996, 2005));
        assert.deepEqual(seqs(await storage.readBefore(c, 2_006, 1_010)), range(996, 2005).reverse());
        assert.deepEqual(seqs(await storage.readBefore(c, 1_005, 10)), range(995, 1004).reverse());
        assert.deepEqual(seqs(await storage.readAfter(c, 0, N + 10)), range(1, N));
        assert.deepEqual(seqs(await storage.readBefore(c, Infinity, N + 10)), range(1, N).reverse());
      });

      it('reads starting exactly at a boundary', async () => {
        assert.deepEqual(seqs(await storage.readAfter(c, 999, 2)), [1000, 1001]);
        assert.deepEqual(seqs(await storage.readAfter(c, 1_000, 2)), [1001, 1002]);
        assert.deepEqual(seqs(await storage.readBefore(c, 1_000, 2)), [999, 998]);
        assert.deepEqual(seqs(await storage.readBefore(c, 1_001, 2)), [1000, 999]);
        assert.deepEqual(seqs(await storage.readBefore(c, 2_000, 1)), [1999]);
      });

      it('the newest page is the tail', async () => {
        assert.deepEqual(seqs(await storage.readBefore(c, Infinity, 50)), range(N - 49, N).reverse());
        assert.deepEqual(await storage.readAfter(c, N, 50), []);
      });
    });

    it('one call of many messages across a partition boundary, some large, reads back in order exactly once', async () => {
      // Seqs 960..1040 cross the boundary at 1,000; bodies from a few bytes to several KiB, so
      // an implementation that groups writes has to cut each partition's run more than once and
      // write the largest on their own.
      const c = conv();
      const sizes = [10, 900, 3_000, 20, 5_000, 1_500, 2_600, 100, 12_000];
      const all = range(960, 1_040).map((s) => ({ ...msg(c, s), body: `${s}:` + 'ж✓x'.repeat(Math.ceil(sizes[s % sizes.length]! / 3)) }));
      const shuffled = [...all].reverse();
      await storage.appendMessages(shuffled);
      assert.deepEqual(await storage.readAfter(c, 0, 1_000), all);
      assert.deepEqual(await storage.readBefore(c, Infinity, 1_000), [...all].reverse());
      assert.deepEqual(seqs(await storage.readAfter(c, 995, 10)), range(996, 1_005));
      // The same call again (a retried drain): still each message once.
      await storage.appendMessages(all);
      assert.deepEqual(await storage.readAfter(c, 0, 1_000), all);
    });

    it('reads skip over a hole of several empty partitions', async () => {
      // Seqs are gapless once the outbox drains, but a late batch can leave a hole for a while.
      const c = conv();
      await append(c, 1, 3);
      await append(c, 5_000, 5_002);
      assert.deepEqual(seqs(await storage.readAfter(c, 2, 10)), [3, 5000, 5001, 5002]);
      assert.deepEqual(seqs(await storage.readBefore(c, 5_001, 10)), [5000, 3, 2, 1]);
      assert.deepEqual(seqs(await storage.readBefore(c, 4_000, 10)), [3, 2, 1]);
      assert.deepEqual(seqs(await storage.readAfter(c, 3, 10)), [5000, 5001, 5002]);
    });

    it('getConversation is null for an unknown conversation', async () => {
      assert.equal(await storage.getConversation(conv()), null);
    });

    it('saveConversation stores the conversation and its members', async () => {
      const c: StoredConversation = { id: conv(), title: 'Team', creator: 'alice', createdAt: T0, members: ['alice', 'bob', 'carol'] };
      await storage.saveConversation(c);
      const got = await storage.getConversation(c.id);
      assert.ok(got);
      assert.deepEqual({ ...got, members: [...got.members].sort(), roster: undefined }, { ...c, roster: undefined });
    });

    it('saveConversation is an idempotent upsert', async () => {
      const c: StoredConversation = { id: conv(), title: null, creator: 'dave', createdAt: T0 + 5, members: ['dave', 'erin'] };
      await storage.saveConversation(c);
      await storage.saveConversation(c);
      await storage.saveConversation({ ...c, members: [...c.members] });
      const got = await storage.getConversation(c.id);
      assert.ok(got);
      assert.deepEqual({ ...got, members: [...got.members].sort(), roster: undefined }, { ...c, roster: undefined });
    });

    it("userConversations pages through a user's conversations by id with each one's last seq", async () => {
      const user = `u${run}_inbox`;
      const ids = [conv(), conv(), conv(), conv(), conv()];
      for (const id of ids) await storage.saveConversation({ id, title: null, creator: user, createdAt: T0, members: [user, 'other'] });
      await storage.saveConversation({ id: conv(), title: null, creator: 'x', createdAt: T0, members: ['x', 'y'] });
      await append(ids[1]!, 1, 3);
      await storage.appendMessages([msg(ids[3]!, 7), msg(ids[3]!, 5)]);
      await storage.appendMessages([msg(ids[3]!, 6)]);
      const sorted = [...ids].sort();
      const page1 = await storage.userConversations(user, '', 3);
      const page2 = await storage.userConversations(user, page1.at(-1)!.conv, 3);
      assert.deepEqual([...page1, ...page2].map((r) => r.conv), sorted);
      const last = new Map([...page1, ...page2].map((r) => [r.conv, r.lastSeq]));
      assert.equal(last.get(ids[1]!), 3);
      assert.equal(last.get(ids[3]!), 7, 'an older seq appended later does not lower lastSeq');
      assert.equal(last.get(ids[0]!), 0);
      const when = new Map([...page1, ...page2].map((r) => [r.conv, r.lastTs]));
      assert.equal(when.get(ids[3]!), msg(ids[3]!, 7).ts, 'lastTs is when the newest message was sent');
      assert.equal(when.get(ids[0]!), T0, 'without messages, lastTs is the creation time');
      assert.deepEqual(await storage.userConversations(`u${run}_nobody`, '', 10), []);
    });

    it('positions only move forward, per member and conversation, whatever order changes arrive in', async () => {
      const [a, b] = [conv(), conv()];
      const user = `u${run}_reader`;
      assert.deepEqual(await storage.positions(user, [a, b]), new Map());
      await storage.setPositions(a, [{ user, delivered: 5 }, { user: 'other', read: 9, delivered: 9 }]);
      await storage.setPositions(a, [{ user, read: 3 }]);
      await storage.setPositions(a, [{ user, delivered: 4, read: 2 }]);
      await storage.setPositions(b, [{ user, read: 1, delivered: 1 }]);
      assert.deepEqual(await storage.positions(user, [a, b, conv()]), new Map([[a, { delivered: 5, read: 3 }], [b, { delivered: 1, read: 1 }]]));
      await storage.setPositions(a, [{ user, delivered: 8, read: 8 }]);
      assert.deepEqual((await storage.positions(user, [a])).get(a), { delivered: 8, read: 8 });
      assert.deepEqual((await storage.positions('other', [a])).get(a), { delivered: 9, read: 9 });
      const many = Array.from({ length: 150 }, () => conv());
      await Promise.all(many.map((c, i) => storage.setPositions(c, [{ user, read: i + 1 }])));
      const got = await storage.positions(user, many);
      assert.equal(got.size, 150, 'more conversations than one query asks for');
      assert.deepEqual(got.get(many[149]!), { delivered: 0, read: 150 });
    });

    describe('device cursors', () => {
      const cursorUser = (tag: string) => `u${run}_${tag}`;

      it('are forward-only: a lower cursor changes nothing, whatever order single writes arrive in', async () => {
        const [user, a, b] = [cursorUser('fwd'), conv(), conv()];
        assert.deepEqual(await storage.deviceCursors(user, 'phone', [a, b]), new Map(), 'none stored: absent, not 0');
        // 1..40 in a scrambled order (17 is coprime with 40): 40 comes eighth, lower ones after it.
        const order = range(0, 39).map((i) => ((i * 17) % 40) + 1);
        let highest = 0;
        for (const seq of order) {
          await storage.setDeviceCursors([{ user, device: 'phone', conv: a, seq }]);
          highest = Math.max(highest, seq);
          assert.equal((await storage.deviceCursors(user, 'phone', [a])).get(a), highest, `after ${seq}`);
        }
        await storage.setDeviceCursors([{ user, device: 'phone', conv: a, seq: 40 }]); // the same batch again
        assert.deepEqual(await storage.deviceCursors(user, 'phone', [a, b]), new Map([[a, 40]]));
      });

      it('are forward-only across concurrent batches and within one batch', async () => {
        const [user, a, b, c] = [cursorUser('conc'), conv(), conv(), conv()];
        const order = range(0, 59).map((i) => ((i * 7) % 60) + 1);
        const batches: { user: string; device: string; conv: string; seq: number }[][] = [];
        for (let i = 0; i < order.length; i += 6) batches.push(order.slice(i, i + 6).flatMap((seq) => [{ user, device: 'phone', conv: a, seq }, { user, device: 'phone', conv: b, seq: 61 - seq }]));
        await Promise.all([...batches].reverse().map((batch) => storage.setDeviceCursors(batch)));
        await storage.setDeviceCursors([{ user, device: 'phone', conv: c, seq: 9 }, { user, device: 'phone', conv: c, seq: 2 }]);
        assert.deepEqual(await storage.deviceCursors(user, 'phone', [a, b, c]), new Map([[a, 60], [b, 60], [c, 9]]));
        await storage.setDeviceCursors([{ user, device: 'phone', conv: c, seq: 3 }, { user, device: 'phone', conv: a, seq: 61 }]);
        assert.deepEqual(await storage.deviceCursors(user, 'phone', [a, b, c]), new Map([[a, 61], [b, 60], [c, 9]]));
      });

      it('one batch of many conversations, users and devices; two devices of one user are kept apart', async () => {
        const [ann, bob] = [cursorUser('ann'), cursorUser('bob')];
        const convs = Array.from({ length: 300 }, () => conv());
        await storage.setDeviceCursors([
          ...convs.map((c, i) => ({ user: ann, device: 'phone', conv: c, seq: i + 1 })),
          ...convs.slice(0, 100).map((c, i) => ({ user: ann, device: 'laptop', conv: c, seq: 1_000 + i })),
          ...convs.slice(0, 10).map((c) => ({ user: bob, device: 'phone', conv: c, seq: 7 })),
        ]);
        const phone = await storage.deviceCursors(ann, 'phone', convs);
        assert.equal(phone.size, 300);
        convs.forEach((c, i) => assert.equal(phone.get(c), i + 1));
        const laptop = await storage.deviceCursors(ann, 'laptop', convs);
        assert.deepEqual(laptop, new Map(convs.slice(0, 100).map((c, i) => [c, 1_000 + i])), "the laptop's own, and only for where it acked");
        assert.deepEqual(await storage.deviceCursors(bob, 'phone', convs.slice(0, 20)), new Map(convs.slice(0, 10).map((c) => [c, 7])), 'another user with the same device id');
        assert.deepEqual(await storage.deviceCursors(ann, 'tablet', convs), new Map(), 'a device that never acked');
        assert.deepEqual(await storage.deviceCursors(ann, 'phone', []), new Map());
      });

      it("a user in 2,000 conversations: each page of userConversations reads back the device's cursors", async () => {
        const user = cursorUser('many');
        const convs = Array.from({ length: 2_000 }, () => conv());
        for (let i = 0; i < convs.length; i += 100) {
          await Promise.all(convs.slice(i, i + 100).map((id) => storage.saveConversation({ id, title: null, creator: user, createdAt: T0, members: [user] })));
        }
        // Cursors in three of every four conversations, sent in one call of 1,500.
        const expected = new Map(convs.flatMap((c, i) => (i % 4 === 3 ? [] : [[c, i + 1] as [string, number]])));
        await storage.setDeviceCursors([...expected].map(([c, seq]) => ({ user, device: 'phone', conv: c, seq })));
        await storage.setDeviceCursors([{ user, device: 'laptop', conv: convs[0]!, seq: 99 }]);
        const seen: string[] = [];
        const got = new Map<string, number>();
        for (let after = ''; ; ) {
          const page = await storage.userConversations(user, after, 500);
          if (page.length === 0) break;
          seen.push(...page.map((r) => r.conv));
          for (const [c, seq] of await storage.deviceCursors(user, 'phone', page.map((r) => r.conv))) got.set(c, seq);
          after = page.at(-1)!.conv;
        }
        assert.deepEqual(seen, [...convs].sort());
        assert.equal(got.size, 1_500);
        assert.deepEqual(got, expected);
      });
    });

    it('a conversation with many members round-trips', async () => {
      const members = Array.from({ length: 1_200 }, (_, i) => `member${String(i).padStart(4, '0')}`);
      const c: StoredConversation = { id: conv(), title: 'Big', creator: 'member0000', createdAt: T0, members };
      await storage.saveConversation(c);
      const got = await storage.getConversation(c.id);
      assert.deepEqual([...(got?.members ?? [])].sort(), members);
    });

    it('applyMembership keeps each member\'s seq range; getConversation gives current members and the roster', async () => {
      const id = conv();
      await storage.saveConversation({ id, title: 'G', creator: 'alice', createdAt: T0, members: ['alice', 'bob'] });
      await storage.applyMembership(id, 3, { op: 'add', by: 'alice', users: ['carol', 'dave'], role: 'member' });
      await storage.applyMembership(id, 5, { op: 'remove', by: 'alice', users: ['bob'] });
      await storage.applyMembership(id, 6, { op: 'role', by: 'alice', users: ['carol'], role: 'admin' });
      await storage.applyMembership(id, 6, { op: 'role', by: 'alice', users: ['carol'], role: 'admin' }); // again: harmless
      const got = await storage.getConversation(id);
      assert.ok(got?.roster);
      assert.deepEqual([...got.members].sort(), ['alice', 'carol', 'dave']);
      const roster = [...got.roster].sort((a, b) => a.user.localeCompare(b.user));
      assert.deepEqual(roster, [
        { user: 'alice', role: 'owner', joinedSeq: 0, leftSeq: null },
        { user: 'bob', role: 'member', joinedSeq: 0, leftSeq: 5 },
        { user: 'carol', role: 'admin', joinedSeq: 3, leftSeq: null },
        { user: 'dave', role: 'member', joinedSeq: 3, leftSeq: null },
      ]);
      assert.deepEqual(membersAt(roster, 2), ['alice', 'bob']);
      assert.deepEqual(membersAt(roster, 3), ['alice', 'bob', 'carol', 'dave']);
      assert.deepEqual(membersAt(roster, 5), ['alice', 'bob', 'carol', 'dave'], 'the removed member gets their removal');
      assert.deepEqual(membersAt(roster, 6), ['alice', 'carol', 'dave']);
      // Re-added: a new range from the re-add.
      await storage.applyMembership(id, 9, { op: 'add', by: 'alice', users: ['bob'], role: 'member' });
      const again = await storage.getConversation(id);
      assert.deepEqual(again?.roster?.find((m) => m.user === 'bob'), { user: 'bob', role: 'member', joinedSeq: 9, leftSeq: null });
    });

    it('a system event round-trips with its sys field, and a removed member\'s last seq stops at the removal', async () => {
      const id = conv();
      await storage.saveConversation({ id, title: null, creator: 'alice', createdAt: T0, members: ['alice', 'bob'] });
      const sys: Msg = { ...msg(id, 2), from: 'alice', body: '', cmid: 'sys-2', sys: { op: 'remove', by: 'alice', users: ['bob'] } };
      await storage.appendMessages([msg(id, 1), sys, msg(id, 3)]);
      await storage.applyMembership(id, 2, sys.sys!);
      assert.deepEqual(await storage.readAfter(id, 0, 10), [msg(id, 1), sys, msg(id, 3)]);
      assert.deepEqual(await storage.userConversations('bob', '', 10000).then((l) => l.filter((c) => c.conv === id)), [{ conv: id, lastSeq: 2, lastTs: sys.ts }]);
      assert.deepEqual(await storage.userConversations('alice', '', 10000).then((l) => l.filter((c) => c.conv === id)), [{ conv: id, lastSeq: 3, lastTs: msg(id, 3).ts }]);
      // A member added later is listed too.
      await storage.applyMembership(id, 4, { op: 'add', by: 'alice', users: [`n${run}`], role: 'member' });
      assert.deepEqual(await storage.userConversations(`n${run}`, '', 10), [{ conv: id, lastSeq: 3, lastTs: msg(id, 3).ts }]);
    });

    describe('push registrations', () => {
      const reg = (user: string, device: string, token: string, extra: Record<string, unknown> = {}) => ({ user, device, service: 'apns' as const, token, env: 'production' as const, topic: 'app.example', ...extra });

      it('a device has one registration, replaced by the next, read back with its time', async () => {
        const u = `pu${run}`;
        await storage.registerPush(reg(u, 'phone', `t1-${run}`), T0);
        await storage.registerPush({ user: u, device: 'tablet', service: 'fcm', token: `f1-${run}` }, T0 + 1);
        assert.deepEqual(await storage.pushRegistration(u, 'phone'), { ...reg(u, 'phone', `t1-${run}`), registeredAt: T0 });
        await storage.registerPush(reg(u, 'phone', `t2-${run}`), T0 + 2);
        assert.equal((await storage.pushRegistration(u, 'phone'))?.token, `t2-${run}`);
        const all = await storage.pushRegistrations([u, u, `nobody${run}`]);
        assert.deepEqual([...all.keys()], [u]);
        assert.deepEqual(all.get(u)!.map((r) => [r.device, r.service, r.token]).sort(), [['phone', 'apns', `t2-${run}`], ['tablet', 'fcm', `f1-${run}`]]);
        assert.deepEqual(all.get(u)!.find((r) => r.device === 'tablet'), { user: u, device: 'tablet', service: 'fcm', token: `f1-${run}`, registeredAt: T0 + 1 });
      });

      it('a token has one owner: registering it elsewhere moves it, and the old token of a device is freed', async () => {
        const [a, b] = [`pa${run}`, `pb${run}`];
        const token = `shared-${run}`;
        await storage.registerPush(reg(a, 'phone', token), T0);
        await storage.registerPush(reg(b, 'phone', token), T0 + 10); // signed out, another user signed in on that phone
        assert.equal(await storage.pushRegistration(a, 'phone'), null, 'the previous owner no longer gets pushes for it');
        assert.equal((await storage.pushRegistration(b, 'phone'))?.token, token);
        await storage.registerPush(reg(b, 'phone', `new-${run}`), T0 + 20); // reinstall: a new token
        await storage.registerPush(reg(a, 'laptop', token), T0 + 30); // the old token reused: nobody else holds it
        assert.equal((await storage.pushRegistration(b, 'phone'))?.token, `new-${run}`);
        assert.equal((await storage.pushRegistration(a, 'laptop'))?.token, token);
      });

      it('invalidates a token only while the device still holds it and registered it before the given time', async () => {
        const u = `pi${run}`;
        await storage.registerPush(reg(u, 'phone', `dead-${run}`), T0 + 100);
        assert.equal(await storage.invalidatePush({ user: u, device: 'phone', token: `other-${run}` }), false, 'another token: untouched');
        assert.equal(await storage.invalidatePush({ user: u, device: 'phone', token: `dead-${run}` }, T0 + 50), false, 'registered after the provider saw it die: kept');
        assert.ok(await storage.pushRegistration(u, 'phone'));
        assert.equal(await storage.invalidatePush({ user: u, device: 'phone', token: `dead-${run}` }, T0 + 200), true);
        assert.equal(await storage.pushRegistration(u, 'phone'), null);
        await storage.registerPush(reg(u, 'phone', `dead-${run}`), T0 + 300); // registered again: works again
        assert.equal((await storage.pushRegistration(u, 'phone'))?.registeredAt, T0 + 300);
        assert.equal(await storage.invalidatePush({ user: u, device: 'phone', token: `dead-${run}` }), true, 'without a time: deleted');
        await storage.registerPush(reg(u, 'tablet', `t-${run}`), T0 + 400);
        await storage.unregisterPush(u, 'tablet');
        assert.equal(await storage.pushRegistration(u, 'tablet'), null);
        await storage.registerPush(reg(u, 'tablet', `t-${run}`), T0 + 500);
        assert.equal((await storage.pushRegistration(u, 'tablet'))?.token, `t-${run}`, 'registering after an unregister works');
      });
    });

    it('a second instance over the same store initializes cleanly and sees the same data', async () => {
      const c = conv();
      await append(c, 1, 3);
      await storage.saveConversation({ id: c, title: 'x', creator: 'a', createdAt: T0, members: ['a'] });
      const other = await make();
      try {
        await other.init();
        assert.deepEqual(await other.readAfter(c, 0, 10), range(1, 3).map((s) => msg(c, s)));
        assert.equal((await other.getConversation(c))?.title, 'x');
      } finally {
        await other.close();
      }
    });
  });
}
