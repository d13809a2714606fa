import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../scripts/lib/ports.ts';
import { startSystem, type System } from './system.ts';
import { TestSocket, createConversation, token } from './socket.ts';

/**
 * OpenTelemetry tracing of the message path, with OTEL_EXPORTER_OTLP_ENDPOINT set on the edge and
 * the region: a local OTLP/HTTP (JSON) collector on loopback receives `send` → `sequence` (edge),
 * `store` → `fanout` → `deliver` (region), one trace, each span under the previous one. A group
 * of three goes through the region's fan-out (LIVE_PUSH_MAX_MEMBERS=2 in tests).
 */
interface Span {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  attributes: Record<string, string>;
}

async function collector(): Promise<{ url: string; spans: Span[]; close(): Promise<void> }> {
  const port = await freePort();
  const spans: Span[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { resourceSpans: any[] };
        for (const rs of body.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a: any) => a.key === 'service.name')?.value?.stringValue ?? '?';
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? []) {
              const attributes: Record<string, string> = {};
              for (const a of s.attributes ?? []) attributes[a.key] = String(a.value?.stringValue ?? a.value?.intValue ?? '');
              spans.push({ service, name: s.name, traceId: s.traceId, spanId: s.spanId, ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}), attributes });
            }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}`, spans, close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))) };
}

describe('tracing of the message path (embedded engines)', { timeout: 180_000 }, () => {
  let sys: System;
  let otlp: Awaited<ReturnType<typeof collector>>;
  const sockets: TestSocket[] = [];

  before(async () => {
    otlp = await collector();
    sys = await startSystem('embedded', {
      edgeVars: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url },
      regionEnv: { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '200' },
    });
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await sys?.stop();
    await otlp?.close();
  });

  it('send → sequence → store → fanout → deliver, one trace, each span under the one before', async () => {
    const users = ['tr_a', 'tr_b', 'tr_c'];
    const socks = await Promise.all(users.map(async (u) => TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, u, 'd1'))));
    sockets.push(...socks);
    const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'tr_a', 'd1'), ['tr_b', 'tr_c'], { title: 'traced' })).id;
    const sent = await socks[0]!.request({ t: 'send', conv, cmid: 'traced-1', body: 'follow me' });
    assert.equal(sent.t, 'sent');
    await socks[2]!.next((f) => f.t === 'msg' && f.conv === conv && f.seq === sent.seq, 30_000);

    const chain = ['send', 'sequence', 'store', 'fanout', 'deliver'];
    const ofMessage = () => {
      const root = otlp.spans.find((s) => s.name === 'send' && s.attributes['switchboard.conv'] === conv && s.attributes['switchboard.seq'] === String(sent.seq));
      return root ? otlp.spans.filter((s) => s.traceId === root.traceId) : [];
    };
    for (const end = Date.now() + 30_000; !chain.every((n) => ofMessage().some((s) => s.name === n)); ) {
      if (Date.now() > end) assert.fail(`spans of the message: ${JSON.stringify(ofMessage().map((s) => s.name))}; all: ${JSON.stringify(otlp.spans.map((s) => s.name))}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const trace = ofMessage();
    const byName = new Map(chain.map((n) => [n, trace.find((s) => s.name === n)!]));
    assert.equal(byName.get('send')!.parentSpanId, undefined, 'send is the root');
    for (let i = 1; i < chain.length; i++) assert.equal(byName.get(chain[i]!)!.parentSpanId, byName.get(chain[i - 1]!)!.spanId, `${chain[i]} is under ${chain[i - 1]}`);
    assert.match(byName.get('send')!.service, /^switchboard-edge/);
    assert.match(byName.get('store')!.service, /^switchboard-region/);
    assert.equal(byName.get('store')!.attributes['switchboard.seq'], String(sent.seq));
  });
});
