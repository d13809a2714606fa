/**
 * Reproduction, found by the fault-injection suite: a `send` still in flight when its socket
 * closes leaves the device unable to send at all until its SessionDO restarts.
 *
 *   npx tsx edge/test/faults.repro.ts        (embedded engines, ~20 s; exit 1 = reproduced)
 *
 * Each round opens a socket for ann/laptop, fires 20 sends, drops the socket abruptly while they
 * are in flight, reconnects the same device and sends once more. Reproduced: that send (and every
 * later send of the device) never gets a reply, while `ping` on the same socket still answers.
 * Mechanism (edge/src/session-do.ts, webSocketMessage): the in-flight send's `sent` reply goes
 * to the closed socket, `ws.send` throws "Can't call WebSocket send() after close()", the catch
 * block's `sendError` throws the same again, so `run()` rejects, the device's entry in
 * `sendChains` stays a rejected promise (the delete after `await next` is skipped), and every
 * later send is chained with `.then(run)`, which never runs on a rejected predecessor.
 */
import { startSystem } from './system.ts';
import { TestSocket, createConversation, token } from './socket.ts';

const sys = await startSystem('embedded');
let wedgedAt = -1;
try {
  const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'ann', 'setup'), ['ben'])).id;
  const tok = await token(sys.edgeUrl, 'ann', 'laptop');
  for (let round = 0; round < 30 && wedgedAt < 0; round++) {
    const a = await TestSocket.open(sys.edgeUrl, tok);
    for (let i = 0; i < 20; i++) a.raw(JSON.stringify({ t: 'send', rid: `x${i}`, conv, cmid: `r${round}-${i}`, body: 'b' }));
    await new Promise((r) => setTimeout(r, Math.random() * 5));
    a.ws.terminate();
    await new Promise((r) => setTimeout(r, 50));
    const b = await TestSocket.open(sys.edgeUrl, tok);
    const reply = await b.request({ t: 'send', conv, cmid: `after-${round}`, body: 'after' }, 5_000).catch((e: Error) => e);
    if (reply instanceof Error) {
      wedgedAt = round;
      const ping = await b.request({ t: 'ping' }, 2_000).catch((e: Error) => e);
      const again = await b.request({ t: 'send', conv, cmid: `again-${round}`, body: 'again' }, 5_000).catch((e: Error) => e);
      console.log(`round ${round}: a send after the drop got no reply in 5 s; ping on that socket: ${ping instanceof Error ? 'no reply' : 'pong'}; another send: ${again instanceof Error ? 'no reply' : 'answered'}`);
    } else console.log(`round ${round}: send after the drop answered seq ${reply.seq}`);
    await b.close();
  }
} finally {
  await sys.stop();
}
console.log(wedgedAt >= 0 ? `REPRODUCED: the device's sends are wedged (round ${wedgedAt})` : 'not reproduced in 30 rounds');
process.exit(wedgedAt >= 0 ? 1 : 0);
