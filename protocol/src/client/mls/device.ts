import type { Msg } from '../../frames.ts';
import { HttpError, call } from '../http.ts';
import type { DeviceRef } from '../../keys.ts';
import { fromBase64Url, readMlsHeader, type MlsView } from '../../mls-wire.ts';
import { b64 } from './b64.ts';
import { MlsError, MlsGroup, type PendingCommit } from './group.ts';
import { certifyDevice, newIdentityKey, newSignatureKey, TrustOnFirstUse, type IdentityKeyPair, type SignatureKeyPair } from './identity.ts';
import { decodeKeyPackage, newKeyPackage, type DeviceKeyPackage } from './key-package.ts';
import type { MlsStore } from './store.ts';
import type { Credential } from 'ts-mls/credential.js';

/** The edge's HTTP API as a device calls it (bearer token of this device). */
export interface E2eHttp {
  call<T>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, body?: unknown): Promise<T>;
}

/** E2eHttp over fetch: `token` gives this device's bearer token; a refusal is an HttpError. */
export function e2eHttp(baseUrl: string, token: () => string | Promise<string>): E2eHttp {
  return {
    async call<T>(method: string, path: string, body?: unknown): Promise<T> {
      return call<T>(`${baseUrl}${path}`, { method, headers: { authorization: `Bearer ${await token()}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    },
  };
}

/** How long a member waits for the device the server named to commit a rotation before committing itself (plus up to half again, at random). */
export const COMMIT_FALLBACK_MS = 4000;

const enc = new TextEncoder();
const dec = new TextDecoder();
const json = (v: unknown) => enc.encode(JSON.stringify(v));
const parse = <T>(b: Uint8Array) => JSON.parse(dec.decode(b)) as T;

/** How many one-time KeyPackages a device keeps published (topped up when fewer than half remain). */
const KEY_PACKAGES = 20;

/**
 * One device's end-to-end encryption, beside its SwitchboardClient: its keys (made here, kept in
 * its MlsStore, never sent), its published KeyPackages, and one MlsGroup per encrypted
 * conversation. `transform` is the client's `transform` option: it turns each MLS message of the
 * log, in seq order, into the plaintext message (or nothing, for commits and proposals), writing
 * the group state before the client acks. `send` encrypts at the current epoch, and commits what a
 * membership change waits for when the server says so.
 */
export class E2eDevice {
  private readonly groups = new Map<string, { group: MlsGroup; seq: number }>();
  private closed = false;
  /** Per conversation, this device's work in order (sends, commits, processing). */
  private readonly chains = new Map<string, Promise<unknown>>();

  private constructor(
    readonly user: string,
    readonly device: string,
    private readonly identity: IdentityKeyPair,
    private readonly signature: SignatureKeyPair,
    private readonly credential: Credential,
    private readonly store: MlsStore,
    private readonly http: E2eHttp,
    readonly trust: TrustOnFirstUse,
    private readonly fallbackMs: number,
  ) {}

  /** Conversations with a commit of ours sent and not answered: settled before the group is used. */
  private readonly unsettled = new Set<string>();

  /** Set once this device learns it was revoked: it takes no more part. */
  revoked = false;

  /** The user's identity public key as this device holds it (what a UI shows as a safety number). */
  get identityKey(): Uint8Array {
    return this.identity.publicKey;
  }

  /**
   * The device's keys from its store, made on first use. `identity`: the user's identity key when
   * this device was linked from another of theirs (absent: this is the user's first device).
   */
  static async open(opts: { user: string; device: string; store: MlsStore; http: E2eHttp; identity?: IdentityKeyPair; onKeyChange?: (user: string) => void; fallbackMs?: number }): Promise<E2eDevice> {
    const { store } = opts;
    const load = async <T>(key: string, make: () => Promise<T>, to: (v: T) => unknown, from: (raw: any) => T): Promise<T> => {
      const raw = await store.get(key);
      if (raw) return from(parse(raw));
      const v = await make();
      await store.put(key, json(to(v)));
      return v;
    };
    const pair = (p: { publicKey: Uint8Array; signKey: Uint8Array }) => ({ publicKey: b64.encode(p.publicKey), signKey: b64.encode(p.signKey) });
    const unpair = (r: { publicKey: string; signKey: string }) => ({ publicKey: b64.decode(r.publicKey), signKey: b64.decode(r.signKey) });
    const identity = await load('identity', async () => opts.identity ?? (await newIdentityKey()), pair, unpair);
    const signature = await load('signature', newSignatureKey, pair, unpair);
    const credential = await certifyDevice(identity, opts.user, opts.device, signature.publicKey);
    // The identity keys this device trusts survive restarts: a key change is then noticed.
    const saved = await store.get('trust');
    let writes = Promise.resolve();
    const trust = new TrustOnFirstUse(
      (user) => opts.onKeyChange?.(user),
      saved ? parse<Record<string, string>>(saved) : {},
      (snapshot) => void (writes = writes.then(() => store.put('trust', json(snapshot))).catch(() => {})),
    );
    trust.check(opts.user, identity.publicKey);
    const device = new E2eDevice(opts.user, opts.device, identity, signature, credential, store, opts.http, trust, opts.fallbackMs ?? COMMIT_FALLBACK_MS);
    device.revoked = (await store.get('revoked')) !== null;
    return device;
  }

  /**
   * Links a new device of this user (run on an existing one): the user's identity key, sealed
   * with a fresh secret, waits at the server for LINK_LIMITS.ttlMs; the code returned (the
   * link's id and the secret; show it, as text or a QR code) is what the new device needs,
   * and the server never sees the secret.
   */
  async createLink(): Promise<string> {
    const secret = crypto.getRandomValues(new Uint8Array(LINK_SECRET_BYTES));
    const plain = json({ publicKey: b64.encode(this.identity.publicKey), signKey: b64.encode(this.identity.signKey) });
    const envelope = await seal(secret, this.user, plain);
    const r = await this.http.call<{ link: string }>('POST', '/v1/devices/links', { envelope: b64.encode(envelope) });
    return `${r.link}.${b64.encode(secret)}`;
  }

  /**
   * Opens a new device of `user` from a link `code` (createLink's, typed or scanned): takes the
   * sealed identity key once, opens it, makes this device's keys certified by it, publishes its
   * KeyPackages and announces it, so every encrypted conversation of the user rotates to add it.
   * A store that holds an identity already is opened as it is (the code was used before).
   */
  static async openLinked(opts: { user: string; device: string; store: MlsStore; http: E2eHttp; code: string; onKeyChange?: (user: string) => void; fallbackMs?: number }): Promise<E2eDevice> {
    if (await opts.store.get('identity')) return E2eDevice.open(opts);
    const dot = opts.code.lastIndexOf('.');
    const secret = dot > 0 ? b64.decode(opts.code.slice(dot + 1)) : new Uint8Array();
    if (secret.length !== LINK_SECRET_BYTES) throw new MlsError('rejected', 'not a device link code');
    const taken = await opts.http.call<{ envelope: string; from: string }>('POST', `/v1/devices/links/${encodeURIComponent(opts.code.slice(0, dot))}/take`);
    const plain = await open(secret, opts.user, b64.decode(taken.envelope)).catch(() => null);
    if (!plain) throw new MlsError('rejected', 'the link code does not open its envelope (mistyped, or not this user’s)');
    const r = parse<{ publicKey: string; signKey: string }>(plain);
    const device = await E2eDevice.open({ ...opts, identity: { publicKey: b64.decode(r.publicKey), signKey: b64.decode(r.signKey) } });
    await device.publishKeyPackages();
    await opts.http.call('POST', `/v1/devices/${encodeURIComponent(opts.device)}/announce`, { via: taken.from });
    return device;
  }

  /** Revokes `device` of this user for good (another of theirs, or this one): every encrypted conversation rotates it out. */
  revokeDevice(device: string): Promise<{ device: string; conversations: number }> {
    return this.http.call('DELETE', `/v1/devices/${encodeURIComponent(device)}`);
  }

  /** A fresh KeyPackage whose private half is kept (to join from a Welcome made for it). */
  private async keyPackage(): Promise<DeviceKeyPackage> {
    const kp = await newKeyPackage(this.credential, this.signature);
    const ref = await digest(kp.bytes);
    const priv = kp.privatePackage;
    await this.store.put(`kp/${ref}`, json({ bytes: b64.encode(kp.bytes), init: b64.encode(priv.initPrivateKey), hpke: b64.encode(priv.hpkePrivateKey), sig: b64.encode(priv.signaturePrivateKey) }));
    return kp;
  }

  private async storedKeyPackages(): Promise<DeviceKeyPackage[]> {
    const out: DeviceKeyPackage[] = [];
    for (const key of await this.store.keys('kp/')) {
      const raw = await this.store.get(key);
      if (!raw) continue;
      const r = parse<{ bytes: string; init: string; hpke: string; sig: string }>(raw);
      const bytes = b64.decode(r.bytes);
      const publicPackage = decodeKeyPackage(bytes);
      if (publicPackage) out.push({ bytes, publicPackage, privatePackage: { initPrivateKey: b64.decode(r.init), hpkePrivateKey: b64.decode(r.hpke), signaturePrivateKey: b64.decode(r.sig) } });
    }
    return out;
  }

  /** Keeps KEY_PACKAGES one-time KeyPackages and a last-resort one published in the key directory. */
  async publishKeyPackages(): Promise<{ count: number; lastResort: boolean }> {
    const base = `/v1/devices/${encodeURIComponent(this.device)}/key-packages`;
    const now = await this.http.call<{ count: number; lastResort: boolean }>('GET', `${base}/count`);
    if (now.count >= KEY_PACKAGES / 2 && now.lastResort) return now;
    const fresh = await Promise.all(Array.from({ length: KEY_PACKAGES - now.count }, () => this.keyPackage()));
    const lastResort = now.lastResort ? undefined : await this.keyPackage();
    return this.http.call('PUT', base, { keyPackages: fresh.map((k) => b64.encode(k.bytes)), ...(lastResort ? { lastResort: b64.encode(lastResort.bytes) } : {}) });
  }

  /** Serializes this device's work on one conversation. */
  private inOrder<T>(conv: string, fn: () => Promise<T>): Promise<T> {
    const guarded = () => (this.closed ? Promise.reject(new Error('E2eDevice closed')) : fn());
    const run = (this.chains.get(conv) ?? Promise.resolve()).then(guarded, guarded);
    this.chains.set(conv, run.catch(() => {}));
    return run;
  }

  /**
   * The conversation's group here, and the highest seq of its log already applied to it (stored
   * with the state in one write, so a message delivered again after a restart, before the client
   * had stored its cursor, is recognised and not applied twice).
   */
  private async group(conv: string): Promise<MlsGroup | null> {
    const cached = this.groups.get(conv);
    if (cached) return this.unsettled.has(conv) ? this.settle(conv, cached.group) : cached.group;
    const raw = await this.store.get(`group/${conv}`);
    if (!raw || raw.length < 8) return null;
    const seq = Number(new DataView(raw.buffer, raw.byteOffset, 8).getBigUint64(0));
    const g = MlsGroup.restore(raw.subarray(8), this.trust);
    this.groups.set(conv, { group: g, seq });
    // Loaded (after a restart): a commit of ours may have been sent without its answer.
    return this.settle(conv, g);
  }

  /**
   * A commit of ours whose answer this device did not get (it stopped, or the request failed):
   * sent again with its cmid, the server answers with its seq if it was sequenced (then its state,
   * kept beside, becomes the group's), or `stale_epoch` if another commit won (dropped). The
   * sender's own device is never sent its own messages, so asking is the only way to know.
   */
  private async settle(conv: string, g: MlsGroup): Promise<MlsGroup> {
    const raw = await this.store.get(`pending/${conv}`);
    if (!raw) {
      this.unsettled.delete(conv);
      return g;
    }
    const kept = parse<KeptCommit>(raw);
    if (BigInt(kept.fromEpoch) !== g.epoch) {
      // The group moved on without it (or with it, applied before the note was deleted).
      await this.store.delete(`pending/${conv}`);
      this.unsettled.delete(conv);
      return g;
    }
    try {
      await this.http.call('POST', `/v1/conversations/${conv}/mls/commit`, { cmid: kept.cmid, commit: kept.commit, groupInfo: kept.groupInfo, ...(kept.welcome ? { welcome: kept.welcome } : {}) });
    } catch (err) {
      if (!(err instanceof HttpError && err.code === 'stale_epoch')) {
        this.unsettled.add(conv);
        return g;
      }
      await this.store.delete(`pending/${conv}`);
      this.unsettled.delete(conv);
      return g;
    }
    const next = MlsGroup.restore(b64.decode(kept.state), this.trust);
    await this.save(conv, next);
    await this.store.delete(`pending/${conv}`);
    this.unsettled.delete(conv);
    return next;
  }

  private applied(conv: string): number {
    return this.groups.get(conv)?.seq ?? 0;
  }

  private async forget(conv: string): Promise<void> {
    this.groups.delete(conv);
    await this.store.delete(`group/${conv}`);
  }

  /** Writes the group's state, with `seq` the log position it now includes (default: unchanged). */
  private async save(conv: string, g: MlsGroup, seq = this.applied(conv)): Promise<void> {
    if (this.closed) throw new Error('E2eDevice closed: another instance owns this store now');
    const state = g.serialize();
    const raw = new Uint8Array(8 + state.length);
    new DataView(raw.buffer).setBigUint64(0, BigInt(seq));
    raw.set(state, 8);
    this.groups.set(conv, { group: g, seq });
    await this.store.put(`group/${conv}`, raw);
  }

  /**
   * This device was revoked: what it holds is worthless from here on, and remembered so (a
   * restart must not rejoin from an old Welcome with a KeyPackage it kept): its group states and
   * KeyPackages' private halves are deleted.
   */
  private async markRevoked(): Promise<void> {
    this.revoked = true;
    await this.store.put('revoked', enc.encode('1'));
    for (const key of [...(await this.store.keys('group/')), ...(await this.store.keys('kp/'))]) await this.store.delete(key);
    this.groups.clear();
  }

  /** Stops this instance (its store may then be opened again): no more writes, no scheduled work. */
  close(): Promise<void> {
    this.closed = true;
    // Resolves once work already under way has stopped (what was writing has written).
    return Promise.all(this.chains.values()).then(() => {});
  }

  /** Devices of `users` (theirs, from the key directory), as KeyPackage bytes; this device excepted. */
  private async claim(users: string[]): Promise<Uint8Array[]> {
    if (users.length === 0) return [];
    const r = await this.http.call<{ packages: { keyPackage: string }[] }>('POST', '/v1/key-packages/claim', { users });
    return r.packages.map((p) => b64.decode(p.keyPackage));
  }

  /** KeyPackages of exactly these devices (linked ones: their users' other devices are in the group already). */
  private async claimDevices(devices: DeviceRef[]): Promise<Uint8Array[]> {
    if (devices.length === 0) return [];
    const r = await this.http.call<{ packages: { keyPackage: string }[] }>('POST', '/v1/key-packages/claim', { users: [...new Set(devices.map((d) => d.user))], devices });
    return r.packages.map((p) => b64.decode(p.keyPackage));
  }

  /**
   * A rotation waits (a member or device added or removed): the device the server named commits
   * at once; every other member's device commits after fallbackMs (with jitter) if it still
   * waits then, so a committer that went away does not hold the conversation.
   */
  private scheduleRotation(conv: string, committer: DeviceRef | undefined): void {
    const mine = committer?.user === this.user && committer.device === this.device;
    const delay = mine ? 0 : this.fallbackMs * (1 + Math.random() / 2);
    const timer = setTimeout(() => {
      if (!this.closed && !this.revoked) this.rotate(conv).catch(() => {});
    }, delay);
    (timer as { unref?: () => void }).unref?.();
  }

  /** Creates an end-to-end encrypted group conversation and its MLS group, adding every member's devices. */
  async createConversation(members: string[], title?: string): Promise<string> {
    const created = await this.http.call<{ id: string }>('POST', '/v1/conversations', { members, e2e: true, ...(title ? { title } : {}) });
    await this.inOrder(created.id, async () => {
      const g = await MlsGroup.create(enc.encode(created.id), await this.keyPackage(), this.trust);
      await this.save(created.id, g);
      await this.commitPending(created.id);
    });
    return created.id;
  }

  /**
   * The MLS group of an encrypted conversation this device created through its own call (POST
   * /v1/conversations with `e2e: true` answered 201: a direct one, whose 200 means it existed),
   * made if this device has none yet, and its members' devices committed; called again, it
   * retries a commit that failed.
   */
  async startGroup(conv: string): Promise<void> {
    await this.inOrder(conv, async () => {
      if (!(await this.group(conv))) await this.save(conv, await MlsGroup.create(enc.encode(conv), await this.keyPackage(), this.trust));
      await this.commitPending(conv);
    });
  }

  /**
   * Adds `users` to an encrypted conversation (an owner's or admin's device) and commits their
   * devices at once, so the conversation is not held waiting for another sender's commit.
   */
  async addMembers(conv: string, users: string[]): Promise<{ seq: number | null }> {
    const r = await this.http.call<{ seq: number | null }>('POST', `/v1/conversations/${conv}/members`, { users });
    await this.rotate(conv);
    return r;
  }

  /** Removes `user` (or leaves, for oneself) and commits the removal of their devices at once. */
  async removeMember(conv: string, user: string): Promise<{ seq: number | null }> {
    const r = await this.http.call<{ seq: number | null }>('DELETE', `/v1/conversations/${conv}/members/${encodeURIComponent(user)}`);
    if (user !== this.user) await this.rotate(conv);
    else await this.inOrder(conv, () => this.forget(conv));
    return r;
  }

  /** Commits what the conversation waits for, if anything (a commit of another member may win). */
  rotate(conv: string): Promise<void> {
    return this.inOrder(conv, () => this.commitPending(conv));
  }

  /** Commits what the conversation waits for (added users' devices, removed users' leaves). */
  private async commitPending(conv: string): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const view = await this.http.call<MlsView>('GET', `/v1/conversations/${conv}/mls`);
      const g = await this.group(conv);
      if (!g || !view.rekeyPending) return;
      if (BigInt(view.epoch) !== g.epoch) {
        // Behind: commits are on their way through the log. They are processed on this
        // conversation's chain, which this holds: let go, and try again once they were.
        if (attempt >= 3) return;
        setTimeout(() => void (this.closed ? undefined : this.rotate(conv).catch(() => {})), 200 * (attempt + 1));
        return;
      }
      const users = [...view.pendingAdds, ...(g.epoch === 0n ? [this.user] : [])];
      const inGroup = new Set(g.members().map((m) => `${m.user}\n${m.device}`));
      // A linked device of a user being added with all their devices comes with them.
      const links = view.pendingLinks.filter((d) => !users.includes(d.user) && !inGroup.has(`${d.user}\n${d.device}`));
      const add = [...(await this.claim(users)), ...(await this.claimDevices(links))];
      const remove = [...new Set([...view.pendingRemoves.flatMap((u) => g.leavesOf(u)), ...view.pendingRevokes.flatMap((d) => g.leavesOf(d.user, d.device))])];
      await this.commitOwn(conv, g, await g.commit({ add, remove }), `commit-${this.device}-${g.epoch}-${crypto.randomUUID()}`);
      return;
    }
  }

  /**
   * Sends our commit and, once sequenced, makes its epoch ours; `false` when another commit won
   * the epoch (ours will never be in the log). The state the commit leads to is kept until the
   * server answers: a device that stops after the server took the commit and before it wrote the
   * new state finds it again when its own commit comes back in the log (transform).
   */
  private async commitOwn(conv: string, g: MlsGroup, pending: PendingCommit, cmid: string): Promise<boolean> {
    const kept: KeptCommit = {
      cmid,
      fromEpoch: String(pending.fromEpoch),
      commit: b64.encode(pending.commit),
      groupInfo: b64.encode(pending.groupInfo),
      ...(pending.welcome ? { welcome: b64.encode(pending.welcome) } : {}),
      state: b64.encode(MlsGroup.serializePending(pending)),
    };
    // A closed instance sends nothing: the instance that replaced it may have loaded this group
    // already, and would never hear of a commit made behind its back.
    if (this.closed) throw new Error('E2eDevice closed: another instance owns this store now');
    await this.store.put(`pending/${conv}`, json(kept));
    try {
      await this.postCommit(conv, pending, cmid);
    } catch (err) {
      if (err instanceof HttpError && err.code === 'stale_epoch') {
        await this.store.delete(`pending/${conv}`);
        return false;
      }
      // Perhaps sequenced: asked again before this group is used (settle).
      this.unsettled.add(conv);
      throw err;
    }
    g.applyCommit(pending);
    await this.save(conv, g);
    await this.store.delete(`pending/${conv}`);
    return true;
  }

  private postCommit(conv: string, c: PendingCommit, cmid: string): Promise<unknown> {
    return this.http.call('POST', `/v1/conversations/${conv}/mls/commit`, {
      cmid,
      commit: b64.encode(c.commit),
      groupInfo: b64.encode(c.groupInfo),
      ...(c.welcome ? { welcome: b64.encode(c.welcome) } : {}),
    });
  }

  /** Joins `conv` from a Welcome made for one of this device's KeyPackages; the seq it joined at, or null. */
  private async join(conv: string): Promise<number | null> {
    const view = await this.http.call<MlsView>('GET', `/v1/conversations/${conv}/mls`);
    const kps = await this.storedKeyPackages();
    // Newest first: a user removed and added again was welcomed more than once.
    for (const w of [...view.welcomes].reverse()) {
      for (const kp of kps) {
        try {
          const g = await MlsGroup.join(b64.decode(w.welcome), kp, this.trust);
          // Everything up to the commit that added this device is before its join.
          await this.save(conv, g, w.seq);
          return w.seq;
        } catch {
          // Not this KeyPackage's Welcome.
        }
      }
    }
    return null;
  }

  /**
   * Rejoins `conv` by external commit (RFC 9420 §12.4.3.2) when this device is a member's but has
   * no state for it and no Welcome opens (its state was lost, or it was never welcomed): from the
   * last GroupInfo, with a fresh KeyPackage, removing the device's old leaf if the tree still has
   * one. It reads from the rejoin on; what was sent before stays unreadable here. Null when it
   * cannot (not a member now, or a change waits for a member's commit: tried again later).
   */
  private async rejoin(conv: string): Promise<number | null> {
    if (this.revoked) return null;
    const view = await this.http.call<MlsView>('GET', `/v1/conversations/${conv}/mls`).catch(() => null);
    if (!view?.groupInfo || view.rekeyPending) return null;
    // Not when this device is about to be welcomed (added or linked, its commit still to come).
    if (view.pendingLinks.some((d) => d.user === this.user && d.device === this.device) || view.pendingAdds.includes(this.user)) return null;
    const { group, commit, groupInfo } = await MlsGroup.joinExternal(b64.decode(view.groupInfo), await this.keyPackage(), this.trust);
    if (this.closed) return null;
    try {
      const r = await this.http.call<{ seq: number }>('POST', `/v1/conversations/${conv}/mls/commit`, {
        cmid: `rejoin-${this.device}-${view.epoch}-${crypto.randomUUID()}`,
        commit: b64.encode(commit),
        groupInfo: b64.encode(groupInfo),
      });
      await this.save(conv, group, r.seq);
      return r.seq;
    } catch (err) {
      if (err instanceof HttpError && (err.code === 'stale_epoch' || err.code === 'rekey_required')) return null;
      throw err;
    }
  }

  /**
   * The client's `transform`: a plaintext conversation's message as it is; an encrypted one's
   * decrypted (its sender checked against the member the server names), commits and proposals
   * applied (nothing shown), the state written before the client acks.
   */
  transform = (msg: Msg): Promise<Msg | null> =>
    this.inOrder(msg.conv, async () => {
      // A revoked device reads nothing more (it could not: its leaves were removed).
      if (this.revoked) return msg.sys ? msg : null;
      if (msg.sys) {
        // Removed, or added again: the old state is worthless (the server serves nothing past a
        // removal, so it never saw the commit that removed it); a new Welcome starts it afresh.
        // (Not a state that already includes it: one joined from a later Welcome.)
        const sys = msg.sys;
        const self = sys.users.includes(this.user);
        if (self && (sys.op === 'remove' || sys.op === 'add')) {
          if ((await this.group(msg.conv)) && msg.seq > this.applied(msg.conv)) await this.forget(msg.conv);
        }
        if (sys.op === 'revoke' && self && sys.device === this.device) {
          await this.markRevoked();
          return msg;
        }
        const ownLink = sys.op === 'link' && self && sys.device === this.device;
        // A revocation of a device that never joined rotates nothing (the event has no committer).
        const rotates = sys.op !== 'role' && !ownLink && !(sys.op === 'revoke' && !sys.commit);
        if (rotates && msg.seq > this.applied(msg.conv) && (await this.group(msg.conv))) this.scheduleRotation(msg.conv, sys.commit);
        return msg;
      }
      const bytes = fromBase64Url(msg.body);
      const header = bytes && readMlsHeader(bytes);
      let g = await this.group(msg.conv);
      if (!header || (!g && header.wireFormat !== 'private' && header.wireFormat !== 'public')) return g ? null : msg;
      if (msg.from === this.user && msg.dev === this.device) {
        // Our own: its plaintext is ours already, and our commits were applied when accepted
        // (or, if this device stopped in between, when its group was loaded again: settle).
        if (header.contentType !== 'application') return null;
        const key = /^[A-Za-z0-9._-]{1,128}$/.test(msg.cmid) ? `sent/${msg.cmid}` : null;
        // Kept: a restart before the client stored its cursor delivers it again.
        const plain = key ? await this.store.get(key) : null;
        return { ...msg, body: plain ? dec.decode(plain) : '' };
      }
      if (!g) {
        if ((await this.join(msg.conv)) === null) await this.rejoin(msg.conv);
        g = await this.group(msg.conv);
        if (!g) return null; // from before this device joined (or rejoined)
      }
      // From before this device joined, or applied already (delivered again after a restart).
      if (msg.seq <= this.applied(msg.conv)) return null;
      const p = await g.process(bytes);
      await this.save(msg.conv, g, msg.seq);
      if (p.kind !== 'application') return null;
      if (p.sender.user !== msg.from) throw new MlsError('rejected', `seq ${msg.seq}: sent by ${msg.from}, encrypted by ${p.sender.user}`);
      return { ...msg, body: dec.decode(p.plaintext) };
    });

  /**
   * Sends `text` to an encrypted conversation through `send` (the client's), encrypting at the
   * current epoch; when the server says a membership change waits, commits it (or waits for the
   * commit of whoever was first) and encrypts again.
   */
  async send(conv: string, text: string, send: (conv: string, body: string, cmid: string) => Promise<{ seq: number }>, cmid: string = crypto.randomUUID()): Promise<{ seq: number }> {
    for (let attempt = 0; ; attempt++) {
      try {
        const body = await this.inOrder(conv, async () => {
          let g = await this.group(conv);
          // Added a moment ago: join from the Welcome if its commit was sequenced already; a
          // member device without state (lost) rejoins by external commit.
          if (!g && ((await this.join(conv)) !== null || (await this.rejoin(conv)) !== null)) g = await this.group(conv);
          if (!g) throw new NotJoinedYet(conv);
          const ct = await g.encrypt(enc.encode(text));
          await this.save(conv, g);
          return b64.encode(ct);
        });
        // Kept (on the device) until the message comes back in the log: this device cannot
        // decrypt what it sent, and a restart in between must not lose its text.
        await this.store.put(`sent/${cmid}`, enc.encode(text));
        return await send(conv, body, cmid);
      } catch (err) {
        const code = err instanceof NotJoinedYet ? 'not_joined' : (err as { code?: string }).code;
        if (attempt >= 10 || (code !== 'rekey_required' && code !== 'stale_epoch' && code !== 'not_joined')) throw err;
        if (code === 'rekey_required') await this.rotate(conv);
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
  }

  /** This conversation's epoch here (null: no state). */
  async epoch(conv: string): Promise<bigint | null> {
    return (await this.group(conv))?.epoch ?? null;
  }
}

/** A commit of ours waiting for the server's answer, with the state it leads to (base64url). */
interface KeptCommit {
  cmid: string;
  fromEpoch: string;
  commit: string;
  groupInfo: string;
  welcome?: string;
  state: string;
}

/** Bytes of a device link's secret (in the code, never sent to the server). */
const LINK_SECRET_BYTES = 16;

async function linkKey(secret: Uint8Array, usage: 'encrypt' | 'decrypt'): Promise<CryptoKey> {
  const base = await crypto.subtle.importKey('raw', secret.slice(), 'HKDF', false, ['deriveKey']);
  return crypto.subtle.deriveKey({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info: enc.encode('switchboard device link v1') }, base, { name: 'AES-GCM', length: 256 }, false, [usage]);
}

/** AES-256-GCM under a key derived from `secret`, bound to `user`: a 12-byte nonce, then the ciphertext. */
async function seal(secret: Uint8Array, user: string, plain: Uint8Array): Promise<Uint8Array> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv, additionalData: enc.encode(user) }, await linkKey(secret, 'encrypt'), plain.slice()));
  const out = new Uint8Array(12 + ct.length);
  out.set(iv);
  out.set(ct, 12);
  return out;
}

async function open(secret: Uint8Array, user: string, sealed: Uint8Array): Promise<Uint8Array> {
  const plain = await crypto.subtle.decrypt({ name: 'AES-GCM', iv: sealed.slice(0, 12), additionalData: enc.encode(user) }, await linkKey(secret, 'decrypt'), sealed.slice(12));
  return new Uint8Array(plain);
}

/** This device was added to a conversation whose commit (and Welcome) has not been sequenced yet. */
class NotJoinedYet extends Error {
  constructor(conv: string) {
    super(`not joined ${conv} yet: its Welcome waits for the commit that adds this device`);
    this.name = 'NotJoinedYet';
  }
}

async function sha256(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes.slice()));
}

async function digest(bytes: Uint8Array): Promise<string> {
  return Array.from(await sha256(bytes), (x) => x.toString(16).padStart(2, '0')).join('');
}
