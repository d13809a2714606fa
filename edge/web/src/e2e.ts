import { fromBase64Url, readMlsHeader, type Msg } from '@switchboard/protocol';
import { E2eDevice, IndexedDBMlsStore, b64, e2eHttp, mlsDatabaseName, newIdentityKey, type IdentityKeyPair } from '@switchboard/protocol/mls';
import { keyedDevices, postConversation } from './api.ts';
import { MessageArchive } from './archive.ts';
import type { ShownMsg } from './model.ts';
import type { Session } from './session.ts';

/** Whether `body` is an MLS handshake or application message (what an encrypted conversation carries), and which. */
export function mlsContent(body: string): 'application' | 'handshake' | null {
  const bytes = body.length >= 8 ? fromBase64Url(body) : null;
  const h = bytes && readMlsHeader(bytes);
  if (!h || (h.wireFormat !== 'private' && h.wireFormat !== 'public')) return null;
  return h.contentType === 'application' ? 'application' : 'handshake';
}

/**
 * A stored message as a device without its text shows it: an MLS application message sealed
 * (never its ciphertext), a commit or proposal not at all (null), anything else as it is.
 */
export function withoutText(m: Msg): ShownMsg | null {
  const kind = m.sys ? null : mlsContent(m.body);
  if (kind === null) return m;
  return kind === 'handshake' ? null : { ...m, body: '', sealed: true };
}

/**
 * The user's identity key in this browser, shared by every device (tab) the user signs in with
 * here: the SDK trusts one identity key per user (trust on first use), so a second tab with a key
 * of its own would be a key change to everyone. Made by the first tab (under a Web Lock, so two
 * tabs signing in at once make one).
 */
async function userIdentity(user: string): Promise<IdentityKeyPair> {
  const make = async (): Promise<IdentityKeyPair> => {
    const store = await IndexedDBMlsStore.open(`switchboard-identity:${user}`);
    try {
      const raw = await store.get('identity');
      if (raw) {
        const r = JSON.parse(new TextDecoder().decode(raw)) as { publicKey: string; signKey: string };
        return { publicKey: b64.decode(r.publicKey), signKey: b64.decode(r.signKey) };
      }
      const id = await newIdentityKey();
      await store.put('identity', new TextEncoder().encode(JSON.stringify({ publicKey: b64.encode(id.publicKey), signKey: b64.encode(id.signKey) })));
      return id;
    } finally {
      await store.close();
    }
  };
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  return locks ? locks.request(`switchboard-identity:${user}`, make) : make();
}

/**
 * The web client's end-to-end encryption: this tab's E2eDevice (its keys and groups in IndexedDB,
 * `switchboard-mls:<user>:<device>`) and the text of what it decrypted (MessageArchive).
 */
export class WebE2e {
  private publishing: Promise<void> | null = null;
  /** Conversations seen to be encrypted (this device holds their group). */
  private readonly encryptedConvs = new Set<string>();

  private constructor(
    readonly device: E2eDevice,
    private readonly archive: MessageArchive,
    private readonly base: string,
    private readonly token: () => Promise<string>,
    private readonly onKeyChange: (user: string) => void,
  ) {}

  static async open(s: Session, base: string, token: () => Promise<string>, onKeyChange: (user: string) => void): Promise<WebE2e> {
    const [store, identity, archive] = await Promise.all([IndexedDBMlsStore.open(mlsDatabaseName(s.user, s.device)), userIdentity(s.user), MessageArchive.open(s.user, s.device)]);
    const device = await E2eDevice.open({ user: s.user, device: s.device, store, http: e2eHttp(base, token), identity, onKeyChange });
    return new WebE2e(device, archive, base, token, onKeyChange);
  }

  /** Keeps this device's KeyPackages published (others add it to conversations with them); one call at a time. */
  publish(): Promise<void> {
    this.publishing ??= this.device
      .publishKeyPackages()
      .then(() => undefined)
      .finally(() => (this.publishing = null));
    return this.publishing;
  }

  /**
   * The client's `transform`: the device's (a plaintext conversation's message as it is; an
   * encrypted one's decrypted, or null for what shows nothing), the text kept before the ack.
   */
  transform = async (m: Msg): Promise<Msg | null> => {
    const out = await this.device.transform(m);
    if ((await this.device.epoch(m.conv)) !== null) {
      this.encryptedConvs.add(m.conv);
      if (out && !out.sys) await this.archive.put(out);
    }
    return out;
  };

  /** Whether `conv` is encrypted, as far as this device knows without asking (it holds its group). */
  async holdsGroup(conv: string): Promise<boolean> {
    return this.encryptedConvs.has(conv) || (await this.device.epoch(conv)) !== null;
  }

  /**
   * A stored message as this device can show it: an MLS application message by its kept text, or
   * sealed when it has none; null for a commit or proposal (nothing to show); anything else as is.
   */
  async reveal(m: Msg): Promise<ShownMsg | null> {
    const shown = withoutText(m);
    return shown?.sealed ? ((await this.archive.get(m.conv, m.seq)) ?? shown) : shown;
  }

  /** Encrypts and sends through `send` (the client's); the text is kept until the message is sequenced. */
  async send(conv: string, text: string, cmid: string, send: (conv: string, body: string, cmid: string) => Promise<{ seq: number; ts: number }>): Promise<{ seq: number; ts: number }> {
    await this.archive.putPending(cmid, text);
    let sent: { seq: number; ts: number } | null = null;
    try {
      await this.device.send(conv, text, async (c, body, id) => (sent = await send(c, body, id)), cmid);
    } finally {
      await this.archive.dropPending(cmid).catch(() => {});
    }
    if (!sent) throw new Error('not sent');
    return sent;
  }

  /** A sent message's text, kept (a reload shows it from here); its text as a pending send is no longer needed. */
  async keep(m: Msg): Promise<void> {
    await this.archive.put(m);
    await this.archive.dropPending(m.cmid);
  }

  /** The text of a send restored from the client's outbox after a reload (null: not kept). */
  pendingText(cmid: string): Promise<string | null> {
    return this.archive.pending(cmid);
  }

  /**
   * Creates an encrypted conversation: a direct one with one other user (no title), else a group.
   * Every member must have a device with published keys, or their devices cannot be added.
   */
  async create(members: string[], title: string): Promise<{ id: string; direct: boolean }> {
    const token = await this.token();
    await this.checkDevices(token, members);
    if (members.length === 1 && !title) {
      const r = await postConversation(this.base, token, { members, direct: true, e2e: true });
      // The device that created it makes its group; one that holds a group still at epoch 0 commits again.
      if (r.created || (await this.device.epoch(r.id)) === 0n) await this.device.startGroup(r.id);
      this.encryptedConvs.add(r.id);
      return { id: r.id, direct: true };
    }
    const id = await this.device.createConversation(members, title || undefined);
    this.encryptedConvs.add(id);
    return { id, direct: false };
  }

  /**
   * Refuses, before anything is created, what the creator's commit would fail on: a member with no
   * device that published keys, or a device (the user's own too) whose identity key is not the one
   * this device trusts for its user (a key change; reported) or differs from their other devices'.
   */
  private async checkDevices(token: string, members: string[]): Promise<void> {
    const me = this.device.user;
    for (const u of [...new Set([me, ...members])]) {
      const devices = await keyedDevices(this.base, token, u);
      if (devices.length === 0) {
        if (u === me) continue;
        throw new Error(`${u} has no device that can receive end-to-end encrypted messages yet (they must sign in once); or untick "End-to-end encrypted"`);
      }
      const trusted = this.device.trust.known(u);
      const keys = new Set(devices.map((d) => d.identityKey));
      if (trusted && !keys.has(b64.encode(trusted))) keys.add('trusted');
      if (keys.size === 1) continue;
      if (trusted && u !== me) this.onKeyChange(u);
      const whose = u === me ? 'One of your devices' : `A device of ${u}`;
      throw new Error(`${whose} has a security key ${trusted ? 'this device does not trust (a key change)' : 'other than their other devices'}: it cannot be added to an encrypted conversation. Nothing was created.`);
    }
  }

  close(): void {
    this.device.close();
  }
}
