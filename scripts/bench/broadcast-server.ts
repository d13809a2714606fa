/**
 * The fan-out baseline: one Node process (ws package) on loopback that sends every text frame it
 * receives to every other connected socket. Prints `{"port":N}` once listening; stops on
 * SIGTERM/SIGINT.
 *
 *   npx tsx scripts/bench/broadcast-server.ts [port]
 */
import { WebSocketServer } from 'ws';

const wss = new WebSocketServer({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0), perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const peer of wss.clients) if (peer !== ws && peer.readyState === peer.OPEN) peer.send(data, { binary: isBinary });
  });
});
wss.on('listening', () => {
  const addr = wss.address();
  process.stdout.write(JSON.stringify({ port: addr && typeof addr === 'object' ? addr.port : 0 }) + '\n');
});
const stop = () => wss.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
