import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { PresenceState } from '@switchboard/protocol';
import { PresenceWatch, chooseWatched, presenceText } from '../web/src/presence.ts';
import { TypingBook, TypingThrottle, typingText } from '../web/src/typing.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const online = (user: string): PresenceState => ({ user, status: 'online', last_seen: null });

/** A PresenceWatch on a fake SDK that refuses any frame naming a user in `strangers`, as the server does. */
function setup(opts: { retryMs?: number; confirmMs?: number } = {}) {
  const frames: [string, string[]][] = [];
  const strangers = new Set<string>();
  let changes = 0;
  const pw: PresenceWatch = new PresenceWatch(
    {
      watch: async (users) => {
        frames.push(['watch', users]);
        if (users.some((u) => strangers.has(u))) throw Object.assign(new Error('you share no conversation'), { code: 'forbidden' });
        for (const u of users) pw.update(online(u));
      },
      unwatch: async (users) => void frames.push(['unwatch', users]),
    },
    () => changes++,
    { retryMs: opts.retryMs ?? 20, confirmMs: opts.confirmMs ?? 30 },
  );
  return { pw, frames, strangers, changes: () => changes };
}

describe('web client presence', () => {
  it('chooses the open conversation’s members first, then direct peers, without the user, up to the cap', () => {
    assert.deepEqual(chooseWatched('me', ['a', 'me', 'b'], ['c', 'a', 'd']), ['a', 'b', 'c', 'd']);
    assert.deepEqual(chooseWatched('me', ['a', 'b'], ['c', 'd'], 3), ['a', 'b', 'c']);
    const big = Array.from({ length: 500 }, (_, i) => `u${i}`);
    assert.equal(chooseWatched('me', big, ['peer']).length, 200, 'the server’s per-device bound');
  });

  it('labels a state: online, last seen …, never seen, unknown', () => {
    const now = 10 * 86_400_000;
    assert.equal(presenceText(online('a'), now), 'online');
    assert.equal(presenceText({ user: 'a', status: 'offline', last_seen: now - 20_000 }, now), 'last seen just now');
    assert.equal(presenceText({ user: 'a', status: 'offline', last_seen: now - 5 * 60_000 }, now), 'last seen 5 min ago');
    assert.equal(presenceText({ user: 'a', status: 'offline', last_seen: now - 3 * 3_600_000 }, now), 'last seen 3 h ago');
    assert.equal(presenceText({ user: 'a', status: 'offline', last_seen: now - 2 * 86_400_000 }, now), 'last seen 2 days ago');
    assert.equal(presenceText({ user: 'a', status: 'offline', last_seen: null }, now), 'offline');
    assert.equal(presenceText(undefined, now), '');
  });

  it('watches who comes into view and unwatches who leaves, only while connected', async () => {
    const { pw, frames } = setup();
    pw.want(['a', 'b']);
    await sleep(5);
    assert.deepEqual(frames, [], 'nothing is sent while offline');
    pw.connection(true);
    await sleep(5);
    assert.deepEqual(frames, [['watch', ['a', 'b']]]);
    assert.equal(pw.state('a')?.status, 'online');
    pw.want(['b', 'c']);
    await sleep(5);
    assert.deepEqual(frames.slice(1), [['unwatch', ['a']], ['watch', ['c']]]);
    assert.equal(pw.state('a'), undefined, 'no state for someone out of view');
    assert.deepEqual(pw.watched(), ['b', 'c']);
    pw.update({ user: 'zed', status: 'online', last_seen: null });
    assert.equal(pw.state('zed'), undefined, 'states of users not watched are ignored');
  });

  it('a refused frame is split to find the stranger, who is retried with backoff while in view', async () => {
    const { pw, frames, strangers } = setup({ retryMs: 40 });
    strangers.add('eve'); // e.g. a conversation that has not reached the region yet
    pw.connection(true);
    pw.want(['a', 'b', 'eve', 'c']);
    await sleep(10);
    assert.deepEqual(pw.watched(), ['a', 'b', 'c']);
    assert.equal(pw.state('eve'), undefined);
    const before = frames.length;
    await sleep(60);
    assert.ok(frames.slice(before).some(([t, u]) => t === 'watch' && u.join() === 'eve'), 'retried');
    strangers.delete('eve');
    await sleep(200);
    assert.deepEqual(pw.watched(), ['a', 'b', 'c', 'eve']);
    assert.equal(pw.state('eve')?.status, 'online');
  });

  it('a lost connection forgets every state; after the reconnect whoever the SDK did not re-report is watched again', async () => {
    const { pw, frames } = setup({ confirmMs: 30 });
    pw.connection(true);
    pw.want(['a', 'b']);
    await sleep(5);
    pw.connection(false);
    assert.equal(pw.state('a'), undefined, 'unknown while disconnected');
    const before = frames.length;
    pw.connection(true);
    pw.update(online('a')); // the SDK's own re-watch reported a, not b
    await sleep(5);
    assert.deepEqual(frames.slice(before), [], 'the SDK gets its chance first');
    await sleep(50);
    assert.deepEqual(frames.slice(before), [['unwatch', ['b']], ['watch', ['b']]]);
    assert.equal(pw.state('b')?.status, 'online');
    assert.deepEqual(pw.watched(), ['a', 'b']);
  });
});

describe('web client typing', () => {
  it('keeps who is typing per conversation, never the user themself', () => {
    const t = new TypingBook('me');
    assert.equal(t.set('c1', 'alice', true), true);
    assert.equal(t.set('c1', 'alice', true), false, 'a renewal changes nothing');
    assert.equal(t.set('c1', 'me', true), false);
    t.set('c1', 'bob', true);
    t.set('c2', 'carol', true);
    assert.deepEqual(t.users('c1'), ['alice', 'bob']);
    assert.equal(t.set('c1', 'alice', false), true);
    assert.deepEqual(t.users('c1'), ['bob']);
    assert.deepEqual(t.users('c3'), []);
  });

  it('says who is typing', () => {
    assert.equal(typingText([]), '');
    assert.equal(typingText(['alice']), 'alice is typing…');
    assert.equal(typingText(['alice', 'bob']), 'alice and bob are typing…');
    assert.equal(typingText(['alice', 'bob', 'carol']), 'alice, bob and 1 other are typing…');
    assert.equal(typingText(['alice', 'bob', 'carol', 'dan']), 'alice, bob and 2 others are typing…');
  });

  it('sends typing at the first keystroke, then at most every 3 s; after a sent message as soon as the edge relays one (2 s), later rather than never', () => {
    const t = new TypingThrottle();
    assert.equal(t.keystroke('c1', 1_000), 0);
    assert.equal(t.keystroke('c1', 2_000), null, 'still shown to the others');
    assert.equal(t.keystroke('c2', 2_000), 0, 'per conversation');
    assert.equal(t.keystroke('c1', 3_999), null);
    assert.equal(t.keystroke('c1', 4_000), 0);
    t.sent('c1');
    assert.equal(t.keystroke('c1', 5_000), 1_250, 'the edge would drop one within 2 s of the last: send it then');
    assert.equal(t.keystroke('c1', 6_250), 0);
    assert.equal(t.keystroke('c1', 8_000), null, 'back to every 3 s');
    assert.equal(t.keystroke('c1', 9_250), 0);
  });
});
