import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { directConvId, signRequest, type Msg } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';
import { startSystem, type System } from './system.ts';
import { TestSocket, createConversation, token, type Frame } from './socket.ts';

/**
 * Every rate limit and quota (edge/src/limits/limits.ts) refuses past its threshold with
 * `rate_limited` and a retry-after, and lets the same request through once it has passed. The
 * limits are set low here so each test takes a couple of seconds. Each test has its own users and
 * its own client address (`CF-Connecting-IP`, which Cloudflare sets in production), so no test
 * spends another's buckets.
 *
 *   node --import tsx --test edge/test/limits-embedded.test.ts
 */
// Periods of tens of seconds, not seconds: a test spends a burst in several requests (a token and
// an upgrade each for a connect) that must all land before one token comes back, which took over
// 2 s on a loaded machine. Each retry-after (period / burst) is waited out once.
const LIMITS = {
  LIMIT_SEND_DEVICE: '5/20s',
  LIMIT_SEND_USER: '8/20s',
  LIMIT_CONNECT_USER: '4/20s',
  LIMIT_CONNECT_IP: '6/60s',
  LIMIT_CONVERSATION_CREATE: '3/30s',
  LIMIT_MEMBER_ADD: '4/30s',
  LIMIT_READ_COST: '4/20s',
  LIMIT_WATCH: '6/20s',
  LIMIT_KEY_UPLOAD: '2/20s',
  LIMIT_PUSH_REGISTER: '2/20s',
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rate limits and quotas (embedded engines)', { timeout: 300_000 }, () => {
  let sys: System;
  const sockets: TestSocket[] = [];
  let ipCounter = 0;
  /** A fresh client address per test: connects per address are counted by it. */
  const newIp = () => `10.9.0.${++ipCounter}`;

  const open = async (user: string, device: string, ip: string) => {
    const s = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, user, device), { headers: { 'cf-connecting-ip': ip } });
    sockets.push(s);
    return s;
  };
  const http = async (method: string, path: string, tok: string, body?: unknown) => {
    const res = await fetch(`${sys.edgeUrl}${path}`, { method, headers: { authorization: `Bearer ${tok}`, 'cf-connecting-ip': '10.8.0.1' }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const text = await res.text();
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: text ? (JSON.parse(text) as Record<string, any>) : null };
  };
  /** A 429 as PROTOCOL.md promises: `Retry-After` in seconds, `rate_limited` and `retryAfterMs` in the body. */
  const assertHttpRefusal = (r: { status: number; retryAfter: string | null; body: Record<string, any> | null }, limit: string): number => {
    assert.equal(r.status, 429, JSON.stringify(r.body));
    assert.equal(r.body?.error?.code, 'rate_limited');
    assert.match(r.body?.error?.message, new RegExp(`^${limit}:`));
    const ms = r.body?.error?.retryAfterMs as number;
    assert.ok(Number.isInteger(ms) && ms > 0, `retryAfterMs ${ms}`);
    assert.equal(Number(r.retryAfter), Math.max(1, Math.ceil(ms / 1000)), 'Retry-After is retryAfterMs in whole seconds, rounded up');
    return ms;
  };
  /** An error frame as PROTOCOL.md promises: `rate_limited` naming its limit, with `retryAfterMs`. */
  const assertFrameRefusal = (f: Frame, limit: string): number => {
    assert.equal(f.t, 'error', JSON.stringify(f));
    assert.equal(f.code, 'rate_limited');
    assert.match(f.message, new RegExp(`^${limit}:`));
    assert.ok(Number.isInteger(f.retryAfterMs) && f.retryAfterMs > 0, `retryAfterMs ${f.retryAfterMs}`);
    return f.retryAfterMs as number;
  };
  const connectRefusal = async (user: string, device: string, ip: string) => {
    const err = (await open(user, device, ip).then(
      () => assert.fail('connected past the limit'),
      (e: unknown) => e,
    )) as { status: number; headers: Record<string, string>; body: string };
    const body = JSON.parse(err.body) as Record<string, any>;
    return { status: err.status, retryAfter: err.headers['retry-after'] ?? null, body };
  };

  before(async () => {
    sys = await startSystem('embedded', { edgeVars: LIMITS });
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await sys?.stop();
  });

  it('sends per device: a burst passes, the flood past it is refused with a retry-after, and the same send passes after it', async () => {
    const ip = newIp();
    const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'sd-a', 'setup'), ['sd-b'])).id;
    const a = await open('sd-a', 'phone', ip);
    for (let i = 1; i <= 5; i++) assert.equal((await a.request({ t: 'send', conv, cmid: `sd-${i}`, body: `m${i}` })).t, 'sent', `burst ${i}`);
    const wait = assertFrameRefusal(await a.request({ t: 'send', conv, cmid: 'sd-6', body: 'm6' }), 'send_device');
    assert.ok(wait <= 20_000 / 5 + 50, `one token comes back within a fifth of the period (${wait} ms)`);
    await sleep(wait);
    const sent = await a.request({ t: 'send', conv, cmid: 'sd-6', body: 'm6' });
    assert.equal(sent.t, 'sent', JSON.stringify(sent));
    assert.equal(sent.seq, 6, 'the refused send took no seq: the retry is the sixth message');
  });

  it("sends per user: the user's devices share a bucket beyond each device's own", async () => {
    const ip = newIp();
    const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'su-a', 'setup'), ['su-b'])).id;
    const [p, t] = [await open('su-a', 'phone', ip), await open('su-a', 'tablet', ip)];
    for (let i = 1; i <= 5; i++) assert.equal((await p.request({ t: 'send', conv, cmid: `p-${i}`, body: 'x' })).t, 'sent');
    for (let i = 1; i <= 3; i++) assert.equal((await t.request({ t: 'send', conv, cmid: `t-${i}`, body: 'x' })).t, 'sent');
    // The tablet has sent 3 of its 5, but the user has sent 8 of 8.
    const wait = assertFrameRefusal(await t.request({ t: 'send', conv, cmid: 't-4', body: 'x' }), 'send_user');
    await sleep(wait);
    assert.equal((await t.request({ t: 'send', conv, cmid: 't-4', body: 'x' })).t, 'sent');
  });

  it('connects per user: refused with 429 and Retry-After before the socket is accepted, then accepted after it', async () => {
    const ip = newIp();
    for (let i = 1; i <= 4; i++) await open('cu-a', `d${i}`, ip);
    const r = await connectRefusal('cu-a', 'd5', ip);
    const wait = assertHttpRefusal(r, 'connect_user');
    // Another user from the same address is not this user's limit.
    await open('cu-b', 'd1', ip);
    await sleep(wait);
    // From another address: this one has spent its connects (6 a minute) by now.
    await open('cu-a', 'd5', newIp());
  });

  it('connects per address: many users from one address are refused past it; another address is not', async () => {
    const ip = newIp();
    for (let i = 1; i <= 6; i++) await open(`ci-${i}`, 'd', ip);
    const wait = assertHttpRefusal(await connectRefusal('ci-7', 'd', ip), 'connect_ip');
    await open('ci-7', 'd', newIp());
    await sleep(wait);
    await open('ci-8', 'd', ip);
  });

  it('conversations created per user: refused with 429 before anything is created, and created after the retry-after', async () => {
    const tok = await token(sys.edgeUrl, 'cc-a', 'd');
    for (let i = 1; i <= 3; i++) assert.equal((await http('POST', '/v1/conversations', tok, { members: [`cc-peer${i}`], direct: true })).status, 201);
    const wait = assertHttpRefusal(await http('POST', '/v1/conversations', tok, { members: ['cc-peer4'], direct: true }), 'conversation_create');
    // Nothing was created: the direct conversation of the pair does not exist.
    const id = await directConvId('cc-a', 'cc-peer4');
    assert.equal((await http('GET', `/v1/conversations/${id}`, tok)).body?.error?.code, 'not_found');
    await sleep(wait);
    assert.equal((await http('POST', '/v1/conversations', tok, { members: ['cc-peer4'], direct: true })).status, 201);
  });

  it('members added per user: a group creation spends one per other member, adds one per user named', async () => {
    const tok = await token(sys.edgeUrl, 'ma-a', 'd');
    const created = await http('POST', '/v1/conversations', tok, { members: ['ma-1', 'ma-2'] });
    assert.equal(created.status, 201);
    const conv = created.body!.id as string;
    assert.equal((await http('POST', `/v1/conversations/${conv}/members`, tok, { users: ['ma-3', 'ma-4'] })).status, 200);
    const wait = assertHttpRefusal(await http('POST', `/v1/conversations/${conv}/members`, tok, { users: ['ma-5'] }), 'member_add');
    const details = await http('GET', `/v1/conversations/${conv}`, tok);
    assert.equal(details.body?.count, 5, 'the refused add changed nothing');
    await sleep(wait);
    assert.equal((await http('POST', `/v1/conversations/${conv}/members`, tok, { users: ['ma-5'] })).status, 200);
  });

  it("resume, history and the conversation list share one cost per user, on the socket and over HTTP", async () => {
    const ip = newIp();
    const tok = await token(sys.edgeUrl, 'rc-a', 'd');
    const conv = (await createConversation(sys.edgeUrl, tok, ['rc-b'])).id;
    const s = await open('rc-a', 'd', ip);
    assert.equal((await s.request({ t: 'resume' })).t, 'changes');
    assert.equal((await s.request({ t: 'history', conv })).t, 'msgs');
    assert.equal((await http('GET', '/v1/conversations', tok)).status, 200);
    assert.equal((await s.request({ t: 'resume' })).t, 'changes');
    const wait = assertFrameRefusal(await s.request({ t: 'resume' }), 'read_cost');
    assertHttpRefusal(await http('GET', '/v1/conversations', tok), 'read_cost');
    // `sync` (catch-up and gap fill) is not counted: it is bounded by requests in progress.
    assert.equal((await s.request({ t: 'sync', conv })).t, 'msgs');
    await sleep(wait);
    assert.equal((await s.request({ t: 'resume' })).t, 'changes');
  });

  it('presence watches per device: each user named costs one', async () => {
    // Presence is watched among users who share a conversation.
    await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'pw-a', 'setup'), ['pw-1', 'pw-2', 'pw-3', 'pw-4']);
    await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'pw-5', 'setup'), ['pw-a'], { direct: true });
    const s = await open('pw-a', 'd', newIp());
    const first = await s.request({ t: 'watch', users: ['pw-1', 'pw-2', 'pw-3', 'pw-4'] });
    assert.equal(first.t, 'watching', JSON.stringify(first));
    assert.equal((await s.request({ t: 'unwatch', users: ['pw-1', 'pw-2'] })).t, 'watching');
    const wait = assertFrameRefusal(await s.request({ t: 'watch', users: ['pw-5'] }), 'watch');
    await sleep(wait);
    assert.equal((await s.request({ t: 'watch', users: ['pw-5'] })).t, 'watching');
  });

  it('key uploads per device: counted before the region checks the packages', async () => {
    const tok = await token(sys.edgeUrl, 'ku-a', 'phone');
    const upload = () => http('PUT', '/v1/devices/phone/key-packages', tok, { keyPackages: ['AAAAAAAAAAAAAAAA'] });
    for (let i = 1; i <= 2; i++) {
      const r = await upload();
      assert.equal(r.status, 400, `upload ${i}: refused for what it holds, not rate limited`);
    }
    const wait = assertHttpRefusal(await upload(), 'key_upload');
    // Another device of the user has its own.
    assert.notEqual((await http('PUT', '/v1/devices/tablet/key-packages', await token(sys.edgeUrl, 'ku-a', 'tablet'), { keyPackages: ['AAAAAAAAAAAAAAAA'] })).status, 429);
    await sleep(wait);
    assert.notEqual((await upload()).status, 429);
  });

  it('push registrations per device: registering and unregistering', async () => {
    const tok = await token(sys.edgeUrl, 'pr-a', 'phone');
    const reg = { provider: 'fcm', token: 'fcm-token-0123456789' };
    assert.equal((await http('PUT', '/v1/devices/phone/push', tok, reg)).status, 200);
    assert.equal((await http('DELETE', '/v1/devices/phone/push', tok)).status, 204);
    const wait = assertHttpRefusal(await http('PUT', '/v1/devices/phone/push', tok, reg), 'push_register');
    // Reading the registration is not limited.
    assert.equal((await http('GET', '/v1/devices/phone/push', tok)).status, 200);
    await sleep(wait);
    assert.equal((await http('PUT', '/v1/devices/phone/push', tok, reg)).status, 200);
  });

  it('the SDK waits out a refused send and sends it again: every message arrives once, in order', async () => {
    const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'sdk-a', 'setup'), ['sdk-b'])).id;
    const got: Msg[] = [];
    const reader = new SwitchboardClient({
      url: sys.edgeUrl,
      token: () => devToken(sys.edgeUrl, 'sdk-b', 'r'),
      socket: (u) => new WebSocket(u, { headers: { 'cf-connecting-ip': newIp() } }) as unknown as SocketLike,
      onMessage: (m) => got.push(m),
    });
    reader.follow(conv);
    await reader.connect();
    const writer = new SwitchboardClient({
      url: sys.edgeUrl,
      token: () => devToken(sys.edgeUrl, 'sdk-a', 'w'),
      socket: (u) => new WebSocket(u, { headers: { 'cf-connecting-ip': newIp() } }) as unknown as SocketLike,
    });
    await writer.connect();
    try {
      const N = 8;
      const t0 = Date.now();
      const sent = await Promise.all(Array.from({ length: N }, (_, i) => writer.send(conv, `sdk ${i + 1}`)));
      assert.ok(writer.stats.rateLimited > 0, 'some sends were refused (5 per 20 s per device)');
      assert.deepEqual(sent.map((s) => s.seq), Array.from({ length: N }, (_, i) => i + 1), 'none dropped, in the order sent');
      assert.ok(Date.now() - t0 >= ((N - 5) * 20_000) / 5 - 500, 'they went at the sustained rate, not faster');
      for (let i = 0; i < 200 && got.length < N; i++) await sleep(50);
      assert.deepEqual(got.map((m) => m.body), Array.from({ length: N }, (_, i) => `sdk ${i + 1}`));
    } finally {
      writer.close();
      reader.close();
    }
  });

  it("the SDK's resume waits out read_cost instead of failing", async () => {
    const client = new SwitchboardClient({
      url: sys.edgeUrl,
      token: () => devToken(sys.edgeUrl, 'sdk-r', 'd'),
      socket: (u) => new WebSocket(u, { headers: { 'cf-connecting-ip': newIp() } }) as unknown as SocketLike,
    });
    await client.connect(); // its own resume: 1 of 4
    try {
      const t0 = Date.now();
      for (let i = 0; i < 5; i++) await client.resume();
      assert.ok(Date.now() - t0 >= 500, 'past the burst, resumes waited for the bucket');
    } finally {
      client.close();
    }
  });

  it('refusals are counted by limit in switchboard_edge_rate_limited_total', async () => {
    const headers = await signRequest(sys.internalSecret, 'GET', '/internal/metrics', '');
    const text = await (await fetch(`${sys.edgeUrl}/internal/metrics`, { headers })).text();
    for (const limit of ['send_device', 'send_user', 'connect_user', 'connect_ip', 'conversation_create', 'member_add', 'read_cost', 'watch', 'key_upload', 'push_register']) {
      const m = new RegExp(`^switchboard_edge_rate_limited_total\\{limit="${limit}"\\} (\\d+)$`, 'm').exec(text);
      assert.ok(m && Number(m[1]) >= 1, `${limit} counted: ${m?.[0] ?? 'missing'}`);
    }
  });
});
