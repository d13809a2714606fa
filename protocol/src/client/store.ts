/** A message the application sent that the server has not confirmed yet. */
export interface PendingSend {
  conv: string;
  cmid: string;
  body: string;
  /** When the application first sent it (ms since the epoch). */
  createdAt: number;
}

export interface StoredState {
  /** Unconfirmed sends, oldest first. */
  outbox: PendingSend[];
  /** Per conversation, the highest seq this device has released to the application. */
  cursors: Record<string, number>;
}

/**
 * Where a client keeps what must survive reconnects and reloads. Contract, for every
 * implementation (MemoryStore here; file in Node, IndexedDB in browsers beside it):
 * - a write has reached durable storage when its promise resolves (for MemoryStore: memory);
 * - `load` returns the outbox in insertion order, each cmid once;
 * - `putPending` of a cmid already stored changes nothing;
 * - cursors only move forward: `setCursor` with a lower seq than stored is ignored.
 */
export interface ClientStore {
  load(): Promise<StoredState>;
  putPending(p: PendingSend): Promise<void>;
  removePending(cmid: string): Promise<void>;
  setCursor(conv: string, seq: number): Promise<void>;
  close(): Promise<void>;
}

/** Keeps state for the life of the object: the default when nothing must outlive the process. */
export class MemoryStore implements ClientStore {
  private readonly outbox = new Map<string, PendingSend>();
  private readonly cursors = new Map<string, number>();

  async load(): Promise<StoredState> {
    return { outbox: [...this.outbox.values()].map((p) => ({ ...p })), cursors: Object.fromEntries(this.cursors) };
  }
  async putPending(p: PendingSend): Promise<void> {
    if (!this.outbox.has(p.cmid)) this.outbox.set(p.cmid, { ...p });
  }
  async removePending(cmid: string): Promise<void> {
    this.outbox.delete(cmid);
  }
  async setCursor(conv: string, seq: number): Promise<void> {
    if (seq > (this.cursors.get(conv) ?? 0)) this.cursors.set(conv, seq);
  }
  async close(): Promise<void> {}
}
