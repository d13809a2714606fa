import { signRequest, type Delivery } from '@switchboard/protocol';

/** Signed POST of deliveries to an edge's internal endpoint; throws on any failure so the queue retries. */
export async function deliverToEdge(secret: string, edge: string, deliveries: Delivery[], timeoutMs = 10_000): Promise<{ users: number; sockets: number }> {
  const path = '/internal/deliver';
  const body = JSON.stringify({ deliveries });
  const res = await fetch(edge + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(await signRequest(secret, 'POST', path, body)) },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (!res.ok) throw new Error(`edge ${edge} answered ${res.status}: ${(await res.text()).slice(0, 200)}`);
  return (await res.json()) as { users: number; sockets: number };
}
