import { signRequest, type PresenceEvent } from '@switchboard/protocol';

/** Signed POST of presence changes to an edge, which hands each to the watching devices' sockets. */
export async function pushPresence(secret: string, edge: string, events: PresenceEvent[], timeoutMs = 5_000): Promise<void> {
  const path = '/internal/presence';
  const body = JSON.stringify({ events });
  const res = await fetch(edge + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await signRequest(secret, 'POST', path, body)) },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`edge ${edge} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
}
