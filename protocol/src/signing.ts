/**
 * Signed internal HTTP between edge and region. The signature covers method, path, timestamp,
 * nonce and body, so neither can be altered; a receiver refuses timestamps outside
 * `SIGNATURE_WINDOW_MS` and any nonce it has already seen within that window (replay).
 */
export const SIGNATURE_WINDOW_MS = 30_000;
export const SIG_HEADERS = { ts: 'x-sb-ts', nonce: 'x-sb-nonce', sig: 'x-sb-sig' } as const;

const enc = new TextEncoder();
const keyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let k = keyCache.get(secret);
  if (!k) {
    k = crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
    keyCache.set(secret, k);
  }
  return k;
}

function canonical(method: string, path: string, ts: string, nonce: string, body: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(enc.encode(`${method.toUpperCase()}\n${path}\n${ts}\n${nonce}\n${body}`));
}

function toHex(buf: ArrayBuffer): string {
  return [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function fromHex(hex: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[0-9a-f]{64}$/.test(hex)) return null;
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** Headers to attach to a signed request of `method path` carrying `body`. */
export async function signRequest(secret: string, method: string, path: string, body: string, now = Date.now()): Promise<Record<string, string>> {
  const ts = String(now);
  const nonce = crypto.randomUUID();
  const sig = await crypto.subtle.sign('HMAC', await hmacKey(secret), canonical(method, path, ts, nonce, body));
  return { [SIG_HEADERS.ts]: ts, [SIG_HEADERS.nonce]: nonce, [SIG_HEADERS.sig]: toHex(sig) };
}

export type SignatureCheck = { ok: true; nonce: string; ts: number } | { ok: false; reason: string };

/**
 * Checks signature and freshness. Replay (a nonce seen before) is the caller's second check,
 * since only the caller knows where nonces are remembered.
 */
export async function verifySignature(
  secret: string,
  method: string,
  path: string,
  body: string,
  headers: { get(name: string): string | null | undefined },
  now = Date.now(),
): Promise<SignatureCheck> {
  const ts = headers.get(SIG_HEADERS.ts);
  const nonce = headers.get(SIG_HEADERS.nonce);
  const sigHex = headers.get(SIG_HEADERS.sig);
  if (!ts || !nonce || !sigHex) return { ok: false, reason: 'unsigned' };
  const tsNum = Number(ts);
  if (!Number.isSafeInteger(tsNum) || Math.abs(now - tsNum) > SIGNATURE_WINDOW_MS) return { ok: false, reason: 'stale timestamp' };
  if (nonce.length > 64) return { ok: false, reason: 'bad nonce' };
  const sig = fromHex(sigHex);
  if (!sig) return { ok: false, reason: 'bad signature' };
  const good = await crypto.subtle.verify('HMAC', await hmacKey(secret), sig, canonical(method, path, ts, nonce, body));
  return good ? { ok: true, nonce, ts: tsNum } : { ok: false, reason: 'bad signature' };
}

/** Remembers nonces for the signature window; `seen` answers true for a replay. In-process only. */
export class NonceCache {
  /** Nonce → when first seen, in the order seen (a Map iterates in insertion order). */
  private readonly entries = new Map<string, number>();
  constructor(private readonly windowMs = SIGNATURE_WINDOW_MS * 2) {}
  /**
   * Whether `nonce` was seen within the window (else it is recorded). Constant time amortized at
   * any rate: entries leave from the oldest end as they expire, each once, and nothing else is
   * scanned (a scan of every entry on each call was quadratic past ~167 requests/s).
   */
  seen(nonce: string, now = Date.now()): boolean {
    this.expire(now);
    if (this.entries.has(nonce)) return true;
    this.entries.set(nonce, now);
    return false;
  }
  /** Nonces remembered (those of the last window). */
  get size(): number {
    return this.entries.size;
  }
  private expire(now: number): void {
    for (const [n, at] of this.entries) {
      if (now - at <= this.windowMs) break;
      this.entries.delete(n);
    }
  }
}
