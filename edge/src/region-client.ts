import { signRequest } from '@switchboard/protocol';
import type { EdgeConfig } from './env.ts';

export class RegionError extends Error {
  override name = 'RegionError';
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

/** POSTs a signed JSON body to the region's internal API and returns its JSON answer. */
export async function callRegion<T>(cfg: EdgeConfig, path: string, body: unknown, timeoutMs = 10_000): Promise<T> {
  const text = JSON.stringify(body);
  const headers = await signRequest(cfg.internalSecret, 'POST', path, text);
  let res: Response;
  try {
    res = await fetch(cfg.regionUrl + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: text,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new RegionError(`region unreachable: ${err instanceof Error ? err.message : String(err)}`, 0);
  }
  if (!res.ok) {
    const detail = await res.text().catch(() => '');
    throw new RegionError(`region answered ${res.status} to ${path}: ${detail.slice(0, 200)}`, res.status);
  }
  return (await res.json()) as T;
}
