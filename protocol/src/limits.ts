/** Wire limits. Every boundary enforces these; PROTOCOL.md documents them. */
export const LIMITS = {
  /** Largest accepted WebSocket text frame, in UTF-8 bytes. Larger frames get `too_large`. */
  maxFrameBytes: 96 * 1024,
  /** Largest message body, in UTF-8 bytes (64 KiB: room for base64 ciphertext of long texts). */
  maxBodyBytes: 64 * 1024,
  /** Largest HTTP request body accepted from clients by the edge. */
  maxHttpBodyBytes: 1024 * 1024,
  /** Largest signed internal request body (edge ↔ region); senders batch well below it. */
  maxInternalBodyBytes: 4 * 1024 * 1024,
  /** An outbox drain request carries events up to about this much JSON (at least one event). */
  drainBatchBytes: 1024 * 1024,
  /** `sync` returns at most this many messages per page. */
  maxSyncLimit: 500,
  defaultSyncLimit: 100,
  /** `history` pages default to this many messages. */
  defaultHistoryLimit: 50,
  /** Devices one user may have connected at once (bounds internal bodies that list them). */
  maxDevicesPerUser: 100,
  /** Members in one conversation created through the API. */
  maxMembers: 5000,
  /** Client ids (cmid, rid) are opaque strings up to this length. */
  maxIdLength: 128,
} as const;

const encoder = new TextEncoder();

/** UTF-8 byte length of a string. */
export function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

/**
 * Whether `s` is at most `max` bytes of UTF-8, encoding it only when its length cannot tell:
 * a UTF-16 code unit is 1 to 3 bytes (a surrogate pair, two units, is 4).
 */
export function fitsUtf8(s: string, max: number): boolean {
  if (s.length > max) return false;
  return s.length * 3 <= max || utf8Length(s) <= max;
}
