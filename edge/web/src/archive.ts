import type { Msg } from '@switchboard/protocol';
import { IndexedDBMlsStore, type MlsStore } from '@switchboard/protocol/mls';

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * The text of encrypted conversations' messages, kept on this device: MLS keys are used once and
 * deleted, so what was decrypted cannot be decrypted again; after a reload the history the server
 * serves (ciphertext) shows through this. Also the text of sends not yet sequenced (the client's
 * outbox holds their ciphertext). One IndexedDB database per user and device, beside its MLS store.
 */
export class MessageArchive {
  constructor(private readonly kv: MlsStore) {}

  static async open(user: string, device: string): Promise<MessageArchive> {
    return new MessageArchive(await IndexedDBMlsStore.open(`switchboard-text:${user}:${device}`));
  }

  /** Keeps a decrypted message (durable when it resolves: before the client acks it). */
  put(m: Msg): Promise<void> {
    return this.kv.put(`m/${m.conv}/${m.seq}`, enc.encode(JSON.stringify(m)));
  }

  async get(conv: string, seq: number): Promise<Msg | null> {
    const raw = await this.kv.get(`m/${conv}/${seq}`);
    return raw ? (JSON.parse(dec.decode(raw)) as Msg) : null;
  }

  putPending(cmid: string, text: string): Promise<void> {
    return this.kv.put(`p/${cmid}`, enc.encode(text));
  }

  async pending(cmid: string): Promise<string | null> {
    const raw = await this.kv.get(`p/${cmid}`);
    return raw ? dec.decode(raw) : null;
  }

  dropPending(cmid: string): Promise<void> {
    return this.kv.delete(`p/${cmid}`);
  }
}
