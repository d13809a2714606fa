import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { signRequest } from '@switchboard/protocol';
import { freePort } from '../../scripts/lib/ports.ts';
import { startSystem, type System } from './system.ts';
import { TestSocket, token } from './socket.ts';

/**
 * A permanent refusal of an outbox event by the region (a 4xx such as a schema refusal after a
 * version skew) must not wedge its conversation. A proxy between the edge and the embedded region
 * plays the region that refuses: any `/internal/events` request carrying a message whose body
 * holds POISON gets the region's own schema refusal (400 invalid_frame), as long as `refusing`.
 * Before dead letters, the conversation retried that batch forever (every 15 s at most) and
 * nothing sent after the poison ever reached the region.
 */
interface RegionProxy {
  url: string;
  target: string | null;
  refusing: boolean;
  /** Seqs of messages the region accepted, per conversation. */
  accepted: Map<string, Set<number>>;
  refusals: number;
  close(): Promise<void>;
}

async function regionProxy(): Promise<RegionProxy> {
  const port = await freePort();
  const proxy: RegionProxy = { url: `http://127.0.0.1:${port}`, target: null, refusing: true, accepted: new Map(), refusals: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const body = Buffer.concat(chunks);
      const events = req.url === '/internal/events' ? ((JSON.parse(body.toString()) as { conv: string; events: { kind: string; msg?: { seq: number; body: string } }[] })) : null;
      if (events && proxy.refusing && events.events.some((e) => e.kind === 'msg' && e.msg!.body.includes('POISON'))) {
        proxy.refusals++;
        res.writeHead(400, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { code: 'invalid_frame', message: 'events.3.msg: unrecognized key "shape"' } }));
      }
      if (!proxy.target) {
        res.writeHead(503, { 'content-type': 'application/json' });
        return res.end(JSON.stringify({ error: { code: 'unavailable', message: 'proxy not ready' } }));
      }
      try {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'content-length') headers[k] = v;
        const answer = await fetch(proxy.target + req.url, { method: req.method, headers, ...(req.method === 'GET' ? {} : { body }) });
        const text = Buffer.from(await answer.arrayBuffer());
        if (answer.ok && events) {
          const seen = proxy.accepted.get(events.conv) ?? new Set<number>();
          proxy.accepted.set(events.conv, seen);
          for (const e of events.events) if (e.kind === 'msg') seen.add(e.msg!.seq);
        }
        res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
        res.end(text);
      } catch (err) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'unavailable', message: String(err) } }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  proxy.close = () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r())));
  return proxy;
}

async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('an outbox event the region refuses for good', { timeout: 180_000 }, () => {
  let sys: System;
  let proxy: RegionProxy;
  const sockets: TestSocket[] = [];
  const admin = async (method: 'GET' | 'POST', path: string, body = '') => {
    const res = await fetch(sys.edgeUrl + path, { method, headers: { 'content-type': 'application/json', ...(await signRequest(sys.internalSecret, method, path, body)) }, ...(method === 'POST' ? { body } : {}) });
    return { status: res.status, body: (await res.json()) as Record<string, any> };
  };

  before(async () => {
    proxy = await regionProxy();
    sys = await startSystem('embedded', { edgeRegionUrl: proxy.url });
    proxy.target = sys.regionUrl;
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await sys?.stop();
    await proxy?.close();
  });

  it('is dead-lettered: the conversation keeps draining, its window trims, and an operator can replay it', async () => {
    const a = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'dlalice', 'a1'));
    sockets.push(a);
    const created = await fetch(`${sys.edgeUrl}/v1/conversations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await token(sys.edgeUrl, 'dlalice', 'a1')}` },
      body: JSON.stringify({ members: ['dlbob'], direct: true }),
    });
    assert.equal(created.status, 201);
    const conv = ((await created.json()) as { id: string }).id;

    // More messages after the poison than the edge's window holds (CONVERSATION_WINDOW=10 in tests).
    const bodies = ['one', 'POISON two', ...Array.from({ length: 20 }, (_, i) => `after ${i + 3}`)];
    const seqs: number[] = [];
    for (const [i, body] of bodies.entries()) {
      const sent = await a.request({ t: 'send', conv, cmid: `dl-${i}`, body });
      assert.equal(sent.t, 'sent', JSON.stringify(sent));
      seqs.push(sent.seq as number);
    }
    const poison = seqs[1]!;
    const others = seqs.filter((s) => s !== poison);

    // Every other message reaches the region (refused batches are split to find the one it refuses).
    await waitFor('the messages around the poison to reach the region', () => others.every((s) => proxy.accepted.get(conv)?.has(s)), 30_000);
    assert.ok(proxy.refusals >= 1, 'the region refused the poisoned event');
    assert.equal(proxy.accepted.get(conv)?.has(poison), false);

    // It is kept as a dead letter, with the region's refusal, for the operator.
    const list = await admin('GET', `/internal/admin/conversations/${conv}/dead-letters`);
    assert.equal(list.status, 200);
    assert.equal(list.body.deadLetters.length, 1);
    const dl = list.body.deadLetters[0];
    assert.equal(dl.seq, poison);
    assert.equal(dl.kind, 'msg');
    assert.equal(dl.status, 400);
    assert.equal(dl.code, 'invalid_frame');
    assert.equal(dl.event.msg.body, 'POISON two');

    // The conversation keeps flowing: a later message reaches the region too, and the window
    // trimmed past the poison (history before the window comes from the region).
    const later = await a.request({ t: 'send', conv, cmid: 'dl-later', body: 'later' });
    await waitFor('a later message to reach the region', () => proxy.accepted.get(conv)?.has(later.seq as number) === true, 15_000);

    // Counted, for an alert: the count rides to a gateway on a later answer (a send's).
    await waitFor(
      'the dead letter counted in /internal/metrics',
      async () => {
        await a.request({ t: 'send', conv, cmid: `dl-m${Date.now()}`, body: 'tick' });
        const res = await fetch(`${sys.edgeUrl}/internal/metrics`, { headers: await signRequest(sys.internalSecret, 'GET', '/internal/metrics', '') });
        return /switchboard_edge_outbox_dead_letters_total\{kind="msg"\} 1\b/.test(await res.text());
      },
      20_000,
    );

    // Bad input to the admin route is a typed error.
    const bad = await admin('POST', `/internal/admin/conversations/${conv}/dead-letters/replay`, JSON.stringify({ oseqs: ['x'] }));
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'invalid_frame');
    const unsigned = await fetch(`${sys.edgeUrl}/internal/admin/conversations/${conv}/dead-letters`);
    assert.equal(unsigned.status, 401);

    // The region is fixed (it takes the event now): the operator replays it and it arrives.
    proxy.refusing = false;
    const replayed = await admin('POST', `/internal/admin/conversations/${conv}/dead-letters/replay`, '{}');
    assert.equal(replayed.status, 200);
    assert.equal(replayed.body.replayed, 1);
    await waitFor('the replayed message to reach the region', () => proxy.accepted.get(conv)?.has(poison) === true, 15_000);
    assert.equal((await admin('GET', `/internal/admin/conversations/${conv}/dead-letters`)).body.deadLetters.length, 0);

    // A device that was offline all along gets every message, the poison's included, in order.
    const b = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'dlbob', 'b1'));
    sockets.push(b);
    const page = await b.request({ t: 'history', conv, limit: 100 });
    assert.equal(page.t, 'msgs', JSON.stringify(page).slice(0, 300));
    const got = (page.msgs as { seq: number }[]).map((m) => m.seq).sort((x, y) => x - y);
    for (const s of seqs) assert.ok(got.includes(s), `history has seq ${s}`);
  });
});
