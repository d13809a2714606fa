import WebSocket from 'ws';

/** A V8 inspector session (Chrome DevTools protocol) with the edge Worker's isolate in workerd. */
export interface Inspector {
  /** Sends one protocol command; rejects on the protocol's error answer. */
  call<T>(method: string, params?: object): Promise<T>;
  close(): void;
}

/**
 * Connects to the inspector workerd serves on `port` (the edge must run with
 * EDGE_INSPECTOR_PORT), picking the switchboard-edge target.
 */
export async function connectInspector(port: number): Promise<{ inspector: Inspector; targetId: string }> {
  let targets: { id: string; webSocketDebuggerUrl?: string }[];
  try {
    targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as typeof targets;
  } catch (err) {
    throw new Error(`no inspector on 127.0.0.1:${port} (start the edge with EDGE_INSPECTOR_PORT=${port}): ${err instanceof Error ? err.message : String(err)}`);
  }
  const target = targets.find((t) => t.id.includes('switchboard-edge')) ?? targets[0];
  if (!target) throw new Error(`no inspector target on port ${port}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl ?? `ws://127.0.0.1:${port}/${target.id}`);
  await new Promise<void>((resolve, reject) => (ws.once('open', () => resolve()), ws.once('error', reject)));
  let nextId = 1;
  const pending = new Map<number, { resolve: (r: any) => void; reject: (e: Error) => void }>();
  ws.on('message', (data) => {
    const m = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message?: string } };
    if (m.id === undefined) return;
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (m.error) p?.reject(new Error(`inspector: ${m.error.message ?? 'error'}`));
    else p?.resolve(m.result);
  });
  ws.on('close', () => {
    for (const p of pending.values()) p.reject(new Error('inspector connection closed'));
    pending.clear();
  });
  const inspector: Inspector = {
    call: <T>(method: string, params: object = {}) =>
      new Promise<T>((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject });
        ws.send(JSON.stringify({ id, method, params }));
      }),
    close: () => ws.close(),
  };
  return { inspector, targetId: target.id };
}
