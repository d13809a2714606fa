/**
 * `npm run metrics:edge-proxy`: lets a Prometheus that cannot sign requests scrape the edge. It
 * listens on 127.0.0.1 (`--port`, default 9465) and answers `GET /metrics` by making the signed
 * `GET /internal/metrics` call to the edge (`--edge`, default http://127.0.0.1:8787) with
 * INTERNAL_SECRET (from the environment, else the dev secrets `npm start` keeps in
 * `.data/<embedded|real>/secrets.json`). `--placements a,b` asks for other placements' gateways.
 * Run it beside Prometheus, never on a public interface: it answers anyone who reaches it.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { signRequest } from '@switchboard/protocol';
import { arg } from './lib/args.ts';
import { ROOT } from './lib/processes.ts';

function secret(): string {
  if (process.env.INTERNAL_SECRET) return process.env.INTERNAL_SECRET;
  for (const mode of ['embedded', 'real']) {
    const file = path.join(process.env.DATA_DIR ?? path.join(ROOT, '.data'), mode, 'secrets.json');
    if (fs.existsSync(file)) return (JSON.parse(fs.readFileSync(file, 'utf8')) as { internalSecret: string }).internalSecret;
  }
  throw new Error('INTERNAL_SECRET is not set and no dev secrets were found under .data/');
}

const edge = arg('edge', process.env.EDGE_URL ?? 'http://127.0.0.1:8787').replace(/\/$/, '');
const port = Number(arg('port', '9465'));
const placements = arg('placements', '');
const key = secret();

const server = http.createServer(async (req, res) => {
  if (req.method !== 'GET' || req.url !== '/metrics') return res.writeHead(404).end('only GET /metrics here\n');
  try {
    const headers = await signRequest(key, 'GET', '/internal/metrics', '');
    const up = await fetch(`${edge}/internal/metrics${placements ? `?placements=${encodeURIComponent(placements)}` : ''}`, { headers, signal: AbortSignal.timeout(10_000) });
    res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'text/plain' }).end(await up.text());
  } catch (err) {
    res.writeHead(502).end(`edge unreachable: ${(err as Error).message}\n`);
  }
});
server.listen(port, '127.0.0.1', () => process.stderr.write(`edge metrics for Prometheus: http://127.0.0.1:${port}/metrics → ${edge}/internal/metrics (signed)\n`));
