/** A device held by its own process, for tests that kill it: connects with the SDK, prints "online", waits. */
import WebSocket from 'ws';
import { SwitchboardClient, devToken, type SocketLike } from '@switchboard/protocol/client';

const [url, user, device, heartbeatMs] = process.argv.slice(2) as [string, string, string, string];
const client = new SwitchboardClient({
  url,
  token: () => devToken(url, user, device),
  socket: (u) => new WebSocket(u) as unknown as SocketLike,
  heartbeatMs: Number(heartbeatMs),
});
await client.connect();
process.stdout.write('online\n');
setInterval(() => {}, 1 << 30);
