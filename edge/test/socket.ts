import WebSocket from 'ws';

export type Frame = Record<string, any> & { t: string };

/** A raw protocol client for tests: every frame it receives is kept and can be awaited. */
export class TestSocket {
  readonly frames: Frame[] = [];
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private rid = 0;
  closed: { code: number; reason: string } | null = null;

  private constructor(
    readonly ws: WebSocket,
    autoAck: boolean,
  ) {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      this.frames.push(f);
      // Like a real client: ack each push (tests deliver in order without faults).
      if (autoAck && f.t === 'msg') ws.send(JSON.stringify({ t: 'ack', conv: f.conv, seq: f.seq }));
      this.waiters = this.waiters.filter((w) => (w.pred(f) ? (w.resolve(f), false) : true));
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: String(reason) }));
  }

  /** `query`: more of the upgrade's query (`placement`, where the edge lets a connection pick one). */
  static open(edgeUrl: string, token: string, opts: { autoAck?: boolean; headers?: Record<string, string>; query?: Record<string, string> } = {}): Promise<TestSocket> {
    return new Promise((resolve, reject) => {
      const query = new URLSearchParams({ token, ...opts.query });
      const ws = new WebSocket(`${edgeUrl.replace(/^http/, 'ws')}/v1/connect?${query}`, opts.headers ? { headers: opts.headers } : {});
      const s = new TestSocket(ws, opts.autoAck ?? true);
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += String(d)));
        res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body })));
      });
      ws.once('error', reject);
      s.next((f) => f.t === 'hello', 10_000).then(() => resolve(s), reject);
    });
  }

  /** The first frame (already received or future) matching `pred`. */
  next(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const hit = this.frames.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  /**
   * The server's close, once its close frame arrived (code and reason), or null. `closed` waits
   * for the TCP connection to end as well, which the local runtime may hold for seconds more.
   */
  closeReceived(): { code: number; reason: string } | null {
    if (this.closed) return this.closed;
    const w = this.ws as unknown as { _closeFrameReceived?: boolean; _closeCode?: number; _closeMessage?: Buffer };
    return w._closeFrameReceived ? { code: w._closeCode ?? 1005, reason: String(w._closeMessage ?? '') } : null;
  }

  raw(text: string): void {
    this.ws.send(text);
  }

  /** Sends a frame with a fresh rid and returns the reply that echoes it. */
  async request(frame: Frame, timeoutMs = 10_000): Promise<Frame> {
    const rid = `t${++this.rid}`;
    this.ws.send(JSON.stringify({ ...frame, rid }));
    return this.next((f) => f.rid === rid, timeoutMs);
  }

  msgs(conv: string): Frame[] {
    return this.frames.filter((f) => f.t === 'msg' && f.conv === conv);
  }

  /** Waits until `n` messages of `conv` have arrived. */
  async waitMsgs(conv: string, n: number, timeoutMs = 10_000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.msgs(conv).length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} msgs in ${conv}, have ${this.msgs(conv).length}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.msgs(conv);
  }

  /** Distinct seqs of `conv` in order of first arrival: what a device shows after dedupe. */
  seqs(conv: string): number[] {
    return [...new Set(this.msgs(conv).map((m) => m.seq as number))];
  }

  /** Waits until `n` distinct seqs of `conv` have arrived (delivery is at-least-once). */
  async waitSeqs(conv: string, n: number, timeoutMs = 10_000): Promise<number[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.seqs(conv).length < n) {
      if (Date.now() > deadline) throw new Error(`expected ${n} distinct seqs in ${conv}, have ${JSON.stringify(this.seqs(conv))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.seqs(conv);
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((r) => {
      this.ws.once('close', () => r());
      this.ws.close(1000);
    });
  }
}

export async function token(edgeUrl: string, user: string, device: string): Promise<string> {
  const res = await fetch(`${edgeUrl}/v1/dev/token`, { method: 'POST', body: JSON.stringify({ user, device }) });
  if (!res.ok) throw new Error(`dev token: HTTP ${res.status}`);
  return ((await res.json()) as { token: string }).token;
}

export async function createConversation(edgeUrl: string, tok: string, members: string[], extra: Record<string, unknown> = {}): Promise<{ id: string; members: string[] }> {
  const res = await fetch(`${edgeUrl}/v1/conversations`, { method: 'POST', headers: { authorization: `Bearer ${tok}` }, body: JSON.stringify({ members, ...extra }) });
  if (res.status !== 201 && res.status !== 200) throw new Error(`create conversation: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; members: string[] };
}
