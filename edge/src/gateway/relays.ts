import type { PresenceEvent, ServerFrame } from '@switchboard/protocol';
import type { ReceiptEvent } from './api.ts';
import type { Connections } from './connections.ts';

/**
 * What a gateway only relays to the sockets it holds, never tracks or retransmits: typing,
 * receipts and presence. Each returns how many socket writes it made; a socket not yet `ready`
 * (its `hello` not sent) or closed meanwhile is skipped.
 */

/** Writes a frame's text; a socket that closed meanwhile is not an error (its device resumes). */
export function write(ws: WebSocket, text: string): boolean {
  try {
    ws.send(text);
    return true;
  } catch {
    return false;
  }
}

export function send(ws: WebSocket, frame: ServerFrame): boolean {
  return write(ws, JSON.stringify(frame));
}

/** `user` is typing in `conv`: to every socket of the users in `to`. */
export function relayTyping(conns: Connections, input: { conv: string; user: string; to: string[] }): number {
  const text = JSON.stringify({ t: 'typing', conv: input.conv, user: input.user } satisfies ServerFrame);
  let sockets = 0;
  for (const user of input.to) for (const c of conns.of(user)?.values() ?? []) if (c.ready && write(c.ws, text)) sockets++;
  return sockets;
}

/** Each event to each recipient's sockets but its `skip` device; a user's own devices hear only of their reads. */
export function relayReceipts(conns: Connections, events: ReceiptEvent[], to: { user: string; skip?: string }[]): number {
  const texts = events.map((e) => ({
    user: e.user,
    delivered: e.delivered === undefined ? null : JSON.stringify({ t: 'delivered', conv: e.conv, user: e.user, seq: e.delivered } satisfies ServerFrame),
    read: e.read === undefined ? null : JSON.stringify({ t: 'read', conv: e.conv, user: e.user, seq: e.read } satisfies ServerFrame),
  }));
  let sockets = 0;
  for (const r of to)
    for (const c of conns.of(r.user)?.values() ?? []) {
      if (c.att.device === r.skip || !c.ready) continue;
      for (const t of texts) {
        if (t.delivered !== null && t.user !== r.user && write(c.ws, t.delivered)) sockets++;
        if (t.read !== null && write(c.ws, t.read)) sockets++;
      }
    }
  return sockets;
}

/** Each presence change to the watcher's devices it names. */
export function relayPresence(conns: Connections, events: PresenceEvent[]): number {
  let sockets = 0;
  for (const e of events) {
    const devices = conns.of(e.to);
    if (!devices) continue;
    const text = JSON.stringify({ t: 'presence', user: e.user, status: e.status, last_seen: e.last_seen } satisfies ServerFrame);
    for (const device of e.devices) {
      const c = devices.get(device);
      if (c?.ready && write(c.ws, text)) sockets++;
    }
  }
  return sockets;
}
