/**
 * Where a device keeps its MLS secrets: its identity and signature keys, the private halves of
 * the KeyPackages it published, and each group's state. Every write is durable when it resolves
 * (the file store syncs to disk), because a state is written before the message that moved it is
 * acked, and a device must never encrypt again from an older copy (that would reuse a key).
 */
export interface MlsStore {
  get(key: string): Promise<Uint8Array | null>;
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys starting with `prefix`. */
  keys(prefix: string): Promise<string[]>;
}

export class MemoryMlsStore implements MlsStore {
  private readonly map = new Map<string, Uint8Array>();
  async get(key: string): Promise<Uint8Array | null> {
    return this.map.get(key) ?? null;
  }
  async put(key: string, value: Uint8Array): Promise<void> {
    this.map.set(key, value.slice());
  }
  async delete(key: string): Promise<void> {
    this.map.delete(key);
  }
  async keys(prefix: string): Promise<string[]> {
    return [...this.map.keys()].filter((k) => k.startsWith(prefix));
  }
}
