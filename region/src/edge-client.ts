import { packDeliveries, signRequest, type Delivery, type PresenceEvent } from '@switchboard/protocol';

/** Signed POST of a JSON body to an edge's internal endpoint; throws on any failure. */
async function postToEdge(secret: string, edge: string, path: string, payload: unknown, timeoutMs: number): Promise<Response> {
  const body = JSON.stringify(payload);
  const res = await fetch(edge + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await signRequest(secret, 'POST', path, body)) },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`edge ${edge} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return res;
}

/** Deliveries to an edge; throws on any failure so the queue retries. */
export async function deliverToEdge(secret: string, edge: string, deliveries: Delivery[], timeoutMs = 10_000): Promise<{ users: number; sockets: number }> {
  return (await (await postToEdge(secret, edge, '/internal/deliver', packDeliveries(deliveries), timeoutMs)).json()) as { users: number; sockets: number };
}

/** Presence changes to an edge, which hands each to the watching devices' sockets. */
export async function pushPresence(secret: string, edge: string, events: PresenceEvent[], timeoutMs = 5_000): Promise<void> {
  await postToEdge(secret, edge, '/internal/presence', { events }, timeoutMs);
}
