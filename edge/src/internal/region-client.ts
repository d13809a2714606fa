import { signRequest } from '@switchboard/protocol';
import { labels, type EdgeMetrics } from '../metrics/edge-metrics.ts';

/** Where the region is and the secret its internal API checks (EdgeConfig has both). */
export interface RegionTarget {
  regionUrl: string;
  internalSecret: string;
}

/** The region's typed refusal (`{"error":{"code","message"}}`), and its Retry-After in seconds. */
export interface RegionRefusal {
  code: string;
  message: string;
  retryAfter?: number;
}

export class RegionError extends Error {
  override name = 'RegionError';
  constructor(
    message: string,
    readonly status: number,
    /** What the region said, when it answered with a typed error (a caller may relay some). */
    readonly refusal?: RegionRefusal,
  ) {
    super(message);
  }
}

/**
 * Whether the region refused a request for good: the same body will never be taken (a schema
 * refusal after a version skew, a body over its limit). 401/403 are not: a signature the region
 * refuses is a deployment's secret or clock, and every call fails alike until that is fixed; 404,
 * 408, 409 and 429 are worth retrying too.
 */
export function isPermanentRefusal(err: unknown): err is RegionError {
  return err instanceof RegionError && (err.status === 400 || err.status === 413 || err.status === 422);
}

/** The typed error in a region's error answer, if it is one. */
function refusalOf(text: string, headers: Headers): RegionRefusal | undefined {
  try {
    const e = (JSON.parse(text) as { error?: { code?: unknown; message?: unknown } }).error;
    if (typeof e?.code !== 'string' || typeof e.message !== 'string') return undefined;
    const retryAfter = Number(headers.get('retry-after') ?? NaN);
    return { code: e.code, message: e.message, ...(Number.isFinite(retryAfter) ? { retryAfter } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * POSTs a signed JSON body to the region's internal API and returns its JSON answer, within
 * `timeoutMs` (the answer's body included). The timeout is a timer cleared once the call ends:
 * with `AbortSignal.timeout` every call's signal and timer outlived it by the whole timeout, and
 * a heap snapshot of the edge under bench:latency at 500 msg/s held 490 of them.
 */
export async function callRegion<T>(cfg: RegionTarget, path: string, body: unknown, timeoutMs = 10_000, metrics?: EdgeMetrics): Promise<T> {
  const t0 = Date.now();
  let result = 'error';
  const text = JSON.stringify(body);
  const headers = await signRequest(cfg.internalSecret, 'POST', path, text);
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  try {
    const answer = await post<T>(cfg.regionUrl + path, path, text, headers, abort.signal);
    result = 'ok';
    return answer;
  } finally {
    clearTimeout(timer);
    // Workers' clocks advance across I/O, so this is the call's wall time.
    metrics?.observe('switchboard_edge_region_call_duration_seconds', labels(path, result), (Date.now() - t0) / 1000);
  }
}

/** One signed POST and its JSON answer; every failure is a RegionError. */
async function post<T>(url: string, path: string, text: string, headers: Record<string, string>, signal: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: text, signal });
  } catch (err) {
    throw new RegionError(`region unreachable: ${err instanceof Error ? err.message : String(err)}`, 0);
  }
  if (!res.ok) {
    const detail = await res.text().catch(() => '');
    throw new RegionError(`region answered ${res.status} to ${path}: ${detail.slice(0, 200)}`, res.status, refusalOf(detail, res.headers));
  }
  try {
    return (await res.json()) as T;
  } catch (err) {
    throw new RegionError(`region's answer to ${path} unreadable: ${err instanceof Error ? err.message : String(err)}`, res.status);
  }
}
