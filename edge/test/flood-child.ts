/**
 * A flooding device in its own process (so its work does not delay the measuring test's event
 * loop): for `ms` it writes `send` frames as fast as its socket takes them, in bursts of BATCH
 * between which its event loop reads what came back (as any event-driven client does, a
 * browser's included); closed, it connects again at once (no backoff: it is the abuser), and a
 * refused connect is tried again after 100 ms. Prints one JSON line with what it wrote and what
 * it was answered.
 *   tsx edge/test/flood-child.ts <edgeUrl> <token> <conv> <ms>
 */
import WebSocket from 'ws';

const [url, token, conv, ms] = process.argv.slice(2) as [string, string, string, string];
const BATCH = 64;
const counts = { written: 0, sent: 0, refused: 0, other: [] as unknown[], firstRefusal: null as unknown, connects: 0, connectRefused: 0, closes: {} as Record<string, number> };
const end = Date.now() + Number(ms);

/** One connection: floods until it is closed (or the time is up); false if the connect was refused. */
async function floodOnce(): Promise<boolean> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/connect?token=${encodeURIComponent(token)}`);
  ws.on('message', (data) => {
    const f = JSON.parse(String(data)) as { t: string; code?: string };
    if (f.t === 'sent') counts.sent++;
    else if (f.t === 'error' && f.code === 'rate_limited') {
      counts.refused++;
      counts.firstRefusal ??= f;
    } else if (!['hello', 'msg', 'delivered', 'read'].includes(f.t)) counts.other.push(f);
  });
  const closed = new Promise<void>((resolve) =>
    ws.on('close', (code) => {
      counts.closes[code] = (counts.closes[code] ?? 0) + 1;
      resolve();
    }),
  );
  const opened = await new Promise<boolean>((resolve) => {
    ws.once('message', () => resolve(true)); // hello
    ws.once('unexpected-response', () => resolve(false));
    ws.once('error', () => resolve(false));
  });
  if (!opened) {
    counts.connectRefused++;
    ws.terminate();
    return false;
  }
  counts.connects++;
  process.stdout.write('flooding\n');
  while (Date.now() < end && ws.readyState === WebSocket.OPEN) {
    for (let i = 0; i < BATCH && ws.bufferedAmount < 256 * 1024 && ws.readyState === WebSocket.OPEN; i++) {
      ws.send(JSON.stringify({ t: 'send', rid: `f${counts.written}`, conv, cmid: `flood-${counts.written}`, body: `flood ${counts.written}` }));
      counts.written++;
    }
    await new Promise((r) => setImmediate(r));
  }
  if (ws.readyState === WebSocket.OPEN) {
    // Answers still on their way, then done.
    await new Promise((r) => setTimeout(r, 1000));
    ws.terminate();
  }
  await closed;
  return true;
}

while (Date.now() < end) if (!(await floodOnce())) await new Promise((r) => setTimeout(r, 100));
process.stdout.write(JSON.stringify(counts) + '\n');
process.exit(0);
