import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { RegionError, callRegion, type RegionTarget } from '../../src/internal/region-client.ts';

/** A region that answers by path: /ok JSON, /fail 503, /garbled a body that is not JSON, /silent never. */
let server: http.Server;
let cfg: RegionTarget;
const open = new Set<http.ServerResponse>();

before(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/ok') return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ epoch: 'e1', signed: typeof req.headers['x-sb-sig'] }));
      if (req.url === '/fail') return res.writeHead(503).end('overloaded');
      if (req.url === '/garbled') return res.writeHead(200, { 'content-type': 'application/json' }).end('{"epoch":');
      open.add(res); // /silent: holds the answer
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cfg = { regionUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, internalSecret: 'x'.repeat(32) };
});

after(async () => {
  for (const res of open) res.destroy();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe('callRegion', () => {
  it('returns the JSON answer', async () => {
    assert.deepEqual(await callRegion<{ epoch: string }>(cfg, '/ok', { ops: [] }), { epoch: 'e1', signed: 'string' });
  });

  it('rejects a refusal with a RegionError that carries the status and the reason', async () => {
    const err = await callRegion(cfg, '/fail', {}).catch((e: unknown) => e);
    assert.ok(err instanceof RegionError);
    assert.equal(err.status, 503);
    assert.match(err.message, /503 to \/fail: overloaded/);
  });

  it('rejects an answer that is not JSON with a RegionError', async () => {
    const err = await callRegion(cfg, '/garbled', {}).catch((e: unknown) => e);
    assert.ok(err instanceof RegionError);
    assert.match(err.message, /unreadable/);
  });

  it('gives up on a region that does not answer within the timeout', async () => {
    const t0 = Date.now();
    const err = await callRegion(cfg, '/silent', {}, 300).catch((e: unknown) => e);
    assert.ok(err instanceof RegionError);
    assert.equal(err.status, 0);
    assert.match(err.message, /no answer within 300 ms/);
    assert.ok(Date.now() - t0 < 5000, 'rejected at the timeout, not at some later default');
  });

  it('rejects an unreachable region with status 0', async () => {
    const err = await callRegion({ ...cfg, regionUrl: 'http://127.0.0.1:9' }, '/ok', {}).catch((e: unknown) => e);
    assert.ok(err instanceof RegionError);
    assert.equal(err.status, 0);
    assert.match(err.message, /region unreachable/);
  });
});
