/**
 * The raw baseline of `npm run bench:connections`: a plain `ws` server in its own Node process
 * that holds idle sockets and speaks just enough of the protocol for the client SDK to come online
 * and stay there: `hello` on connect (user and device read from the token, unverified), `changes`
 * with nothing changed for `resume`, `pong` for `ping`. permessage-deflate only with `--compression`.
 * GET /healthz answers 200. Prints `{"port":N,"pid":P}` once listening; stops on SIGTERM/SIGINT.
 *
 *   npx tsx scripts/bench/idle-ws-server.ts [--compression]
 */
import http from 'node:http';
import { WebSocketServer } from 'ws';

/** The token's claims, unverified (this server only holds sockets): `sub` is the user, `dev` the device. */
function claims(token: string | null): { sub?: string; dev?: string } {
  try {
    return JSON.parse(Buffer.from(token!.split('.')[1]!, 'base64url').toString()) as { sub?: string; dev?: string };
  } catch {
    return {};
  }
}

const server = http.createServer((req, res) => void res.writeHead(req.url === '/healthz' ? 200 : 404).end());
const wss = new WebSocketServer({ server, perMessageDeflate: process.argv.includes('--compression') });
wss.on('connection', (ws, req) => {
  const who = claims(new URL(req.url ?? '/', 'http://x').searchParams.get('token'));
  ws.send(JSON.stringify({ t: 'hello', user: who.sub ?? 'unknown', dev: who.dev ?? 'unknown', v: 1 }));
  ws.on('message', (data) => {
    let f: { t?: string; rid?: string };
    try {
      f = JSON.parse(String(data)) as typeof f;
    } catch {
      return;
    }
    if (f.t === 'resume') ws.send(JSON.stringify({ t: 'changes', rid: f.rid, convs: [] }));
    else if (f.t === 'ping') ws.send(JSON.stringify({ t: 'pong', rid: f.rid, ts: Date.now() }));
  });
});
server.listen(0, '127.0.0.1', 4096, () => {
  const addr = server.address();
  process.stdout.write(JSON.stringify({ port: addr && typeof addr === 'object' ? addr.port : 0, pid: process.pid }) + '\n');
});
const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
