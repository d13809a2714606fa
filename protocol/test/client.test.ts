import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_SENDS_IN_FLIGHT, SwitchboardClient, type SocketLike } from '../src/client/index.ts';
import type { Msg } from '../src/index.ts';

type Frame = Record<string, any>;

/** A scripted server behind a fake socket: it sees every client frame and answers as the test says. */
class FakeServer {
  sockets: FakeSocket[] = [];
  frames: Frame[] = [];
  /** Default replies; a test overrides per frame type. */
  reply: (f: Frame, s: FakeSocket) => void = (f, s) => {
    if (f.t === 'send') s.push({ t: 'sent', rid: f.rid, conv: f.conv, cmid: f.cmid, seq: this.seqOf(f.cmid), ts: 1 });
    else if (f.t === 'resume') s.push({ t: 'changes', rid: f.rid, convs: [] });
    else if (f.t === 'sync') s.push({ t: 'msgs', rid: f.rid, conv: f.conv, msgs: [], more: false });
    else if (f.t === 'ping') s.push({ t: 'pong', rid: f.rid, ts: 1 });
  };
  greet = true;
  private seqs = new Map<string, number>();
  seqOf(cmid: string): number {
    if (!this.seqs.has(cmid)) this.seqs.set(cmid, this.seqs.size + 1);
    return this.seqs.get(cmid)!;
  }
  factory = (_url: string): SocketLike => {
    const s = new FakeSocket(this);
    this.sockets.push(s);
    setTimeout(() => {
      s.onopen?.({});
      if (this.greet) s.push({ t: 'hello', user: 'me', dev: 'd1', v: 1 });
    }, 1);
    return s;
  };
  get last(): FakeSocket {
    return this.sockets.at(-1)!;
  }
  sent(t: string): Frame[] {
    return this.frames.filter((f) => f.t === t);
  }
}

class FakeSocket implements SocketLike {
  readyState = 1;
  onopen: ((ev: unknown) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(private readonly server: FakeServer) {}
  send(data: string): void {
    const f = JSON.parse(data) as Frame;
    this.server.frames.push(f);
    this.server.reply(f, this);
  }
  push(f: Frame): void {
    setTimeout(() => this.readyState === 1 && this.onmessage?.({ data: JSON.stringify(f) }), 1);
  }
  close(code = 1000, reason = ''): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 1);
  }
}

const msg = (seq: number): Msg => ({ t: 'msg', conv: 'c', seq, cmid: `m${seq}`, from: 'bob', dev: 'p', ts: seq, body: `b${seq}` });
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

function client(server: FakeServer, extra: Partial<ConstructorParameters<typeof SwitchboardClient>[0]> = {}) {
  const got: Msg[] = [];
  const c = new SwitchboardClient({ url: 'http://x', token: () => 't', socket: server.factory, onMessage: (m) => got.push(m), backoff: { baseMs: 5, capMs: 20 }, ...extra });
  return { c, got };
}

describe('SwitchboardClient', () => {
  it('transform: each message in order, one at a time; the ack waits for it; a failure is reported and passed over', async () => {
    const server = new FakeServer();
    const seen: number[] = [];
    const errors: number[] = [];
    let inside = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const { c, got } = client(server, {
      ackDelayMs: 0,
      transform: async (m) => {
        inside++;
        assert.equal(inside, 1, 'one at a time');
        seen.push(m.seq);
        if (m.seq === 1) await gate;
        inside--;
        if (m.seq === 2) throw new Error('undecryptable');
        return m.seq === 3 ? null : { ...m, body: m.body.toUpperCase() };
      },
      onTransformError: (m) => void errors.push(m.seq),
    });
    await c.connect();
    for (const seq of [1, 2, 3, 4]) server.last.push(msg(seq));
    await until(() => seen.length === 1);
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(got.length, 0, 'nothing shown while the first is in transform');
    assert.deepEqual(server.sent('ack'), [], 'and nothing acked');
    release();
    await until(() => got.length === 2 && server.sent('ack').some((a) => a.seq === 4));
    assert.deepEqual(seen, [1, 2, 3, 4]);
    assert.deepEqual(got.map((m) => m.body), ['B1', 'B4'], 'a null hides the message (seq 3); a failure skips it (seq 2)');
    assert.deepEqual(errors, [2]);
    c.close();
  });

  it('releases in order, drops duplicates, fills a gap by syncing exactly the missing range, and acks', async () => {
    const server = new FakeServer();
    const base = server.reply;
    server.reply = (f, s) => (f.t === 'sync' ? s.push({ t: 'msgs', rid: f.rid, conv: 'c', msgs: [msg(2)], more: false }) : base(f, s));
    const { c, got } = client(server);
    c.follow('c');
    await c.connect();
    server.last.push(msg(1));
    server.last.push(msg(1));
    server.last.push(msg(3));
    await until(() => got.length === 3);
    assert.deepEqual(got.map((m) => m.seq), [1, 2, 3]);
    assert.ok(server.sent('sync').some((f) => f.conv === 'c' && f.after === 1), 'synced after the last seq it had');
    // Acks of one conversation are gathered (ackDelayMs): the cumulative ack of 3 follows within the window.
    await until(() => server.sent('ack').at(-1)?.seq === 3);
    assert.equal(c.stats.duplicates >= 1, true);
    c.close();
  });

  it('gathers the acks of a burst into few cumulative ones, the last naming the highest seq', async () => {
    const server = new FakeServer();
    const { c, got } = client(server, { ackDelayMs: 100 });
    c.follow('c');
    await c.connect();
    for (let seq = 1; seq <= 10; seq++) server.last.push(msg(seq));
    await until(() => got.length === 10);
    await until(() => server.sent('ack').at(-1)?.seq === 10);
    const acks = server.sent('ack').map((f) => f.seq);
    assert.ok(acks.length <= 3, `10 messages at once took ${acks.length} acks: ${acks}`);
    assert.deepEqual(acks, [...acks].sort((a, b) => a - b));
    c.close();
  });

  it('gives every send() of a still-pending cmid the one seq, with one message', async () => {
    const server = new FakeServer();
    const base = server.reply;
    let held: (() => void) | null = null;
    server.reply = (f, s) => (f.t === 'send' && !held ? (held = () => base(f, s)) : base(f, s));
    const { c } = client(server);
    await c.connect();
    const first = c.send('c', 'hi', 'same');
    const second = c.send('c', 'hi', 'same');
    await until(() => held !== null);
    held!();
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a.seq, b.seq);
    assert.equal(server.sent('send').length, 1);
    c.close();
  });

  it('retries a send whose reply was lost on a live connection, with the same cmid', async () => {
    const server = new FakeServer();
    const base = server.reply;
    let dropped = 0;
    server.reply = (f, s) => (f.t === 'send' && dropped++ === 0 ? undefined : base(f, s));
    const { c } = client(server, { requestTimeoutMs: 50 });
    await c.connect();
    const sent = await c.send('c', 'hello', 'lost-reply');
    assert.equal(sent.seq, 1);
    assert.deepEqual(server.sent('send').map((f) => f.cmid), ['lost-reply', 'lost-reply']);
    assert.equal(server.sockets.length, 1, 'no reconnect was needed');
    c.close();
  });

  it('resends unconfirmed messages with their cmid after a reconnect', async () => {
    const server = new FakeServer();
    const base = server.reply;
    let first = true;
    server.reply = (f, s) => {
      if (f.t === 'send' && first) {
        first = false;
        return s.close(1006, 'dropped');
      }
      base(f, s);
    };
    const { c } = client(server);
    await c.connect();
    const sent = await c.send('c', 'survives', 'cm-1');
    assert.equal(sent.seq, 1);
    assert.equal(server.sockets.length, 2);
    assert.deepEqual(server.sent('send').map((f) => f.cmid), ['cm-1', 'cm-1']);
    assert.equal(c.stats.reconnects, 1);
    c.close();
  });

  it('keeps at most MAX_SENDS_IN_FLIGHT sends awaiting replies, sending the rest in order as replies come', async () => {
    const server = new FakeServer();
    const base = server.reply;
    const held: (() => void)[] = [];
    server.reply = (f, s) => (f.t === 'send' ? void held.push(() => base(f, s)) : base(f, s));
    const { c } = client(server);
    await c.connect();
    const sends = Array.from({ length: 40 }, (_, i) => c.send('c', `m${i}`, `cm-${i}`));
    await until(() => held.length === MAX_SENDS_IN_FLIGHT);
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.sent('send').length, MAX_SENDS_IN_FLIGHT, 'no more than the window goes out');
    while (server.sent('send').length < 40 || held.length > 0) {
      if (held.length === 0) await new Promise((r) => setTimeout(r, 5));
      else held.shift()!();
    }
    const seqs = (await Promise.all(sends)).map((f) => f.seq);
    assert.deepEqual(server.sent('send').map((f) => f.cmid), Array.from({ length: 40 }, (_, i) => `cm-${i}`), 'in the order sent');
    assert.deepEqual(seqs, Array.from({ length: 40 }, (_, i) => i + 1));
    c.close();
  });

  it('a send refused with rate_limited is retried, and holds the later ones back so the order is kept', async () => {
    const server = new FakeServer();
    const base = server.reply;
    let refused = false;
    server.reply = (f, s) => {
      if (f.t === 'send' && f.cmid === 'b' && !refused) {
        refused = true;
        return s.push({ t: 'error', rid: f.rid, code: 'rate_limited', message: 'slow down' });
      }
      base(f, s);
    };
    const { c } = client(server);
    await c.connect();
    const a = c.send('c', 'a', 'a');
    const b = c.send('c', 'b', 'b');
    await a;
    await new Promise((r) => setTimeout(r, 20)); // b's refusal has arrived; its retry waits
    const cc = c.send('c', 'c', 'c');
    assert.deepEqual((await Promise.all([b, cc])).map((f) => f.cmid), ['b', 'c']);
    assert.deepEqual(server.sent('send').map((f) => f.cmid), ['a', 'b', 'b', 'c'], 'c went out only after b was retried');
    c.close();
  });

  it('abandons a handshake that never completes and connects again', async () => {
    const server = new FakeServer();
    server.greet = false;
    const { c } = client(server, { handshakeTimeoutMs: 30 });
    const connected = c.connect();
    await until(() => server.sockets.length >= 2);
    server.greet = true;
    server.last.push({ t: 'hello', user: 'me', dev: 'd1', v: 1 });
    await connected;
    assert.equal(c.status, 'online');
    c.close();
  });

  it('drops a silent (half-open) connection found by the heartbeat', async () => {
    const server = new FakeServer();
    const base = server.reply;
    server.reply = (f, s) => (f.t === 'ping' ? undefined : base(f, s));
    const { c } = client(server, { heartbeatMs: 20 });
    await c.connect();
    await until(() => server.sockets.length >= 2, 2000);
    assert.ok(server.sent('ping').length >= 1);
    c.close();
  });

  it('says when the resume after each (re)connect is done: every changes page and the syncs it started', async () => {
    const server = new FakeServer();
    const base = server.reply;
    const held: (() => void)[] = [];
    server.reply = (f, s) => {
      if (f.t === 'resume' && f.after === '') return s.push({ t: 'changes', rid: f.rid, convs: [{ conv: 'c', last: 1, acked: 0 }], next: 'c' });
      if (f.t === 'resume') return s.push({ t: 'changes', rid: f.rid, convs: [{ conv: 'd', last: 1, acked: 0 }] });
      // Syncs answer only when the test says so: the resume is not done before them.
      if (f.t === 'sync') return void held.push(() => s.push({ t: 'msgs', rid: f.rid, conv: f.conv, msgs: [{ ...msg(1), conv: f.conv }], more: false }));
      base(f, s);
    };
    const resumed: { conversations: number; ms: number }[] = [];
    const { c, got } = client(server, { onResumed: (r) => resumed.push(r) });
    await c.connect();
    // One sync per page here (the second page is asked for once the first page's syncs are done).
    for (let page = 1; page <= 2; page++) {
      await until(() => held.length === 1);
      await new Promise((r) => setTimeout(r, 20));
      assert.equal(resumed.length, 0, `not before page ${page}'s sync is answered`);
      held.shift()!();
    }
    await until(() => resumed.length === 1);
    assert.equal(resumed[0]!.conversations, 2);
    assert.ok(resumed[0]!.ms >= 20);
    assert.deepEqual(got.map((m) => m.conv).sort(), ['c', 'd']);
    // A reconnect resumes again: nothing new this time, and no sync.
    server.reply = (f, s) => (f.t === 'resume' ? s.push({ t: 'changes', rid: f.rid, convs: [] }) : base(f, s));
    server.last.close(1006, 'dropped');
    await until(() => resumed.length === 2);
    assert.equal(resumed[1]!.conversations, 0);
    // A failed resume is not reported.
    server.reply = (f, s) => (f.t === 'resume' ? s.push({ t: 'error', rid: f.rid, code: 'unavailable', message: 'later' }) : base(f, s));
    server.last.close(1006, 'dropped');
    await until(() => server.sent('resume').length === 4);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(resumed.length, 2);
    assert.equal(c.stats.reconnects, 2);
    c.close();
  });

  it('a resume the server cannot answer is tried again on the same connection, and finds a conversation the device never saw', async () => {
    const server = new FakeServer();
    const base = server.reply;
    let refusals = 2;
    server.reply = (f, s) => {
      if (f.t === 'resume' && refusals-- > 0) return s.push({ t: 'error', rid: f.rid, code: 'unavailable', message: 'conversation list unavailable; retry later' });
      if (f.t === 'resume') return s.push({ t: 'changes', rid: f.rid, convs: [{ conv: 'new', last: 1, acked: 0 }] });
      if (f.t === 'sync') return s.push({ t: 'msgs', rid: f.rid, conv: f.conv, msgs: [{ ...msg(1), conv: f.conv }], more: false });
      base(f, s);
    };
    const resumed: { conversations: number }[] = [];
    const { c, got } = client(server, { onResumed: (r) => resumed.push(r) });
    await c.connect();
    await until(() => resumed.length === 1, 10_000);
    assert.equal(server.sent('resume').length, 3, 'two refusals, then the resume that answered');
    assert.equal(server.sockets.length, 1, 'on the same connection');
    assert.deepEqual(got.map((m) => [m.conv, m.seq]), [['new', 1]]);
    c.close();
  });

  it('does not reconnect after a close code that says not to', async () => {
    const server = new FakeServer();
    const statuses: string[] = [];
    const { c } = client(server, { onStatus: (s) => statuses.push(s) });
    await c.connect();
    server.last.close(4001, 'token expired');
    await until(() => statuses.at(-1) === 'offline');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(server.sockets.length, 1);
  });
});
