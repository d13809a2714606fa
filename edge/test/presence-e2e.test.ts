import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import { ROOT } from '../../scripts/lib/processes.ts';
import { TestSocket, createConversation, token, type Frame } from './socket.ts';
import { realEngineEnv, startSystem, type System } from './system.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
// Real Redis when the engines are up (as CI has them); the embedded registry otherwise.
const engines = realEngineEnv('probe') ? 'real' : 'embedded';
/** Short settings so expiry happens in seconds: heartbeat 0.5 s, batches every 1 s, TTL 3 s, sweep 0.2 s. */
const HEARTBEAT_MS = 500;
const BOUND_MS = 3_000 + 200 + 1_000;

describe(`presence and typing end to end (${engines} engines)`, { timeout: 300_000 }, () => {
  let sys: System;
  const cleanups: (() => unknown)[] = [];
  let n = 0;
  const uid = (name: string) => `${name}${++n}x${process.pid}`;

  /** A raw socket that heartbeats like the SDK does. */
  const live = async (user: string, device = 'd1', beat = true) => {
    const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device));
    const timer = beat ? setInterval(() => s.ws.readyState === WebSocket.OPEN && s.raw('{"t":"ping"}'), HEARTBEAT_MS) : null;
    const stop = () => timer && clearInterval(timer);
    cleanups.push(() => (stop(), s.close()));
    return Object.assign(s, { stopBeats: stop });
  };
  const conv = async (owner: string, others: string[]) => (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, owner, 'setup'), others)).id;
  /** Watches, retrying while the new conversation has not yet reached the region's storage. */
  const watch = async (s: TestSocket, users: string[]): Promise<Frame> => {
    const end = Date.now() + 20_000;
    for (;;) {
      const r = await s.request({ t: 'watch', users });
      if (r.t !== 'error' || r.code !== 'forbidden' || Date.now() > end) return r;
      await sleep(300);
    }
  };
  const presence = (s: TestSocket, user: string, status: string, timeoutMs = BOUND_MS + 10_000) =>
    s.next((f) => f.t === 'presence' && f.user === user && f.status === status && !seenFrames.has(f), timeoutMs).then((f) => (seenFrames.add(f), f));
  const seenFrames = new Set<Frame>();
  const presenceFrames = (s: TestSocket) => s.frames.filter((f) => f.t === 'presence');

  before(async () => {
    sys = await startSystem(engines, {
      edgeVars: { PRESENCE_FLUSH_SECONDS: '1' },
      regionEnv: { PRESENCE_TTL_SECONDS: '3', PRESENCE_SWEEP_MS: '200' },
    });
  });
  after(async () => {
    for (const c of cleanups) await c();
    await sys?.stop();
  });

  it('a watcher gets the current state, then offline at once on a clean close, then online again', async () => {
    const [alice, bob] = [uid('alice'), uid('bob')];
    await conv(alice, [bob]);
    const b = await live(bob);
    const a = await live(alice);
    const r = await watch(a, [bob]);
    assert.equal(r.t, 'watching', JSON.stringify(r));
    assert.deepEqual(r.users, [{ user: bob, status: 'online', last_seen: null }]);
    const t0 = Date.now();
    b.stopBeats();
    await b.close();
    const off = await presence(a, bob, 'offline');
    assert.equal(typeof off.last_seen, 'number');
    assert.ok(off.last_seen >= t0 - 5_000);
    await live(bob);
    await presence(a, bob, 'online');
  });

  it('two devices: online until both are gone', async () => {
    const [alice, bob] = [uid('alice'), uid('bob')];
    await conv(alice, [bob]);
    const b1 = await live(bob, 'phone');
    const b2 = await live(bob, 'laptop');
    const a = await live(alice);
    assert.equal((await watch(a, [bob])).users[0].status, 'online');
    b1.stopBeats();
    await b1.close();
    await sleep(BOUND_MS + 1_000); // past any expiry the first device could have caused
    assert.deepEqual(presenceFrames(a), [], 'still online through the laptop');
    b2.stopBeats();
    await b2.close();
    await presence(a, bob, 'offline');
  });

  it('a device whose heartbeats stop goes offline within the bound although its socket stays open', async () => {
    const [alice, bob] = [uid('alice'), uid('bob')];
    await conv(alice, [bob]);
    const b = await live(bob);
    const a = await live(alice);
    await watch(a, [bob]);
    b.stopBeats();
    await presence(a, bob, 'offline');
    assert.equal(b.ws.readyState, WebSocket.OPEN, 'offline by TTL and sweep, not by a close');
    b.raw('{"t":"ping"}'); // any frame is a heartbeat again
    await presence(a, bob, 'online');
  });

  it('kill -9 of the process holding a device: its watchers see offline', async () => {
    const [alice, bob] = [uid('alice'), uid('bob')];
    await conv(alice, [bob]);
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'edge/test/presence-child.ts'), sys.edgeUrl, bob, 'd1', String(HEARTBEAT_MS)], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    cleanups.push(() => child.kill('SIGKILL'));
    await new Promise<void>((resolve, reject) => {
      readline.createInterface({ input: child.stdout! }).on('line', (l) => l === 'online' && resolve());
      child.once('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    const a = await live(alice);
    assert.equal((await watch(a, [bob])).users[0].status, 'online');
    child.kill('SIGKILL');
    await presence(a, bob, 'offline');
  });

  it('nobody who is not watching is told anything; watches end with the connection and by unwatch', async () => {
    const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
    await conv(alice, [bob, carol]);
    const c = await live(carol);
    const a1 = await live(alice, 'd1');
    await watch(a1, [bob]);
    await a1.close();
    const a2 = await live(alice, 'd1'); // same device, new connection: no watches
    const a3 = await live(alice, 'd3');
    await watch(a3, [bob]);
    assert.deepEqual((await a3.request({ t: 'unwatch', users: [bob] })).users, []);
    const a4 = await live(alice, 'd4');
    await watch(a4, [bob]);
    const b = await live(bob);
    await presence(a4, bob, 'online');
    b.stopBeats();
    await b.close();
    await presence(a4, bob, 'offline');
    await sleep(500);
    for (const s of [c, a2, a3]) assert.deepEqual(presenceFrames(s), []);
  });

  it('refuses strangers and bad frames with typed errors', async () => {
    const [alice, bob, stranger] = [uid('alice'), uid('bob'), uid('stranger')];
    const id = await conv(alice, [bob]);
    const theirs = await conv(stranger, [uid('other')]);
    const a = await live(alice);
    assert.equal((await watch(a, [bob])).t, 'watching');
    const refused = await a.request({ t: 'watch', users: [bob, stranger] });
    assert.equal(refused.code, 'forbidden');
    assert.match(refused.message, new RegExp(stranger));
    const bad = async (frame: Frame) => (await a.request(frame)).code;
    assert.equal(await bad({ t: 'watch', users: [] }), 'invalid_frame');
    assert.equal(await bad({ t: 'watch', users: Array.from({ length: 201 }, (_, i) => `u${i}`) }), 'invalid_frame');
    assert.equal(await bad({ t: 'watch', users: ['bad id!'] }), 'invalid_frame');
    assert.equal(await bad({ t: 'unwatch' }), 'invalid_frame');
    assert.equal(await bad({ t: 'typing', conv: 'no/such' }), 'invalid_frame');
    assert.equal(await bad({ t: 'typing', conv: theirs }), 'not_member');
    assert.equal((await a.request({ t: 'ping' })).t, 'pong', 'the connection stays usable');
    void id;
  });

  it('typing reaches the other members only, rate-limited, and expires at the client', async () => {
    const [alice, bob, carol] = [uid('alice'), uid('bob'), uid('carol')];
    const id = await conv(alice, [bob]);
    await conv(alice, [carol]);
    const events: [string, boolean][] = [];
    const bobSdk = new SwitchboardClient({
      url: sys.edgeUrl,
      token: () => devToken(sys.edgeUrl, bob, 'sdk'),
      socket: (u) => new WebSocket(u) as unknown as SocketLike,
      heartbeatMs: HEARTBEAT_MS,
      typingShowMs: 800,
      onTyping: (c, user, typing) => c === id && events.push([user, typing]),
    });
    cleanups.push(() => bobSdk.close());
    await bobSdk.connect();
    const bobRaw = await live(bob, 'raw');
    const c = await live(carol);
    const aOther = await live(alice, 'other');
    const a = await live(alice);
    a.raw(JSON.stringify({ t: 'typing', conv: id }));
    a.raw(JSON.stringify({ t: 'typing', conv: id })); // within 2 s: dropped without an error
    const ev = await bobRaw.next((f) => f.t === 'typing');
    assert.deepEqual(ev, { t: 'typing', conv: id, user: alice });
    const end = Date.now() + 10_000;
    while (!events.some(([, t]) => !t) && Date.now() < end) await sleep(50);
    assert.deepEqual(events, [[alice, true], [alice, false]], 'shown, then expired without renewal');
    await sleep(300);
    assert.equal(bobRaw.frames.filter((f) => f.t === 'typing').length, 1, 'the second within the interval was dropped');
    assert.equal(a.frames.filter((f) => f.t === 'error').length, 0);
    for (const s of [c, aOther, a]) assert.equal(s.frames.filter((f) => f.t === 'typing').length, 0, 'not to non-members or the typist');
  });
});
