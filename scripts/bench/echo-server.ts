/**
 * The baseline: a raw WebSocket echo server (ws package) on loopback, in its own Node process.
 * Every text frame goes straight back on the socket it came from. Prints `{"port":N}` once
 * listening; stops on SIGTERM/SIGINT.
 *
 *   npx tsx scripts/bench/echo-server.ts [port]
 */
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0), perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
});
wss.on('listening', () => {
  const addr = wss.address();
  process.stdout.write(JSON.stringify({ port: addr && typeof addr === 'object' ? addr.port : 0 }) + '\n');
});
const stop = () => wss.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
