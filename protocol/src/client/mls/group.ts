import type { ClientConfig } from 'ts-mls/clientConfig.js';
import { createGroup, decodeGroupState, encodeGroupState, joinGroup, type ClientState } from 'ts-mls/clientState.js';
import { createCommit, createGroupInfoWithExternalPubAndRatchetTree, joinGroupExternal } from 'ts-mls/createCommit.js';
import { ratchetTreeFromExtension } from 'ts-mls/groupInfo.js';
import { createApplicationMessage } from 'ts-mls/createMessage.js';
import type { Credential } from 'ts-mls/credential.js';
import { encodeExternalSender } from 'ts-mls/externalSender.js';
import { decodeMlsMessage, encodeMlsMessage, type MLSMessage } from 'ts-mls/message.js';
import { processPrivateMessage, processPublicMessage } from 'ts-mls/processMessages.js';
import type { Proposal } from 'ts-mls/proposal.js';
import { emptyPskIndex } from 'ts-mls/pskIndex.js';
import { zeroOutUint8Array } from 'ts-mls/util/byteArray.js';
import { defaultClientConfig } from 'ts-mls/clientConfig.js';
import { unprotectPrivateMessage } from 'ts-mls/messageProtection.js';
import { authService, decodeCredential, type IdentityTrust } from './identity.ts';
import { treeMembers, type LeafMember } from './inspect.ts';
import { decodeKeyPackage, type DeviceKeyPackage } from './key-package.ts';
import { mlsSuite } from './suite.ts';

/** A member of the group: its leaf and the user and device its credential names. */
export type GroupMember = LeafMember;

/** The server (the conversation's Delivery Service) as the group's external sender. */
export interface DeliveryServiceKey {
  signaturePublicKey: Uint8Array;
  credential: Credential;
}

export type Processed =
  | { kind: 'application'; plaintext: Uint8Array; sender: GroupMember; epoch: bigint }
  | { kind: 'commit'; epoch: bigint; removed: boolean }
  | { kind: 'proposal'; epoch: bigint };

/** A commit made and not applied yet: applied once the conversation sequenced it, else dropped. */
export interface PendingCommit {
  /** MLSMessage bytes of the commit (a PublicMessage: the server reads its epoch and sender). */
  commit: Uint8Array;
  /** MLSMessage bytes of the Welcome for added devices (none without adds). */
  welcome: Uint8Array | null;
  /** MLSMessage bytes of the new epoch's GroupInfo (with the tree), for the server to keep. */
  groupInfo: Uint8Array;
  /** The epoch the commit ends (the group's current one). */
  fromEpoch: bigint;
  readonly next: ClientState;
  readonly consumed: Uint8Array[];
}

export class MlsError extends Error {
  constructor(
    readonly code: 'not_mls' | 'wrong_group' | 'stale_epoch' | 'undecryptable' | 'rejected' | 'not_member',
    message: string,
  ) {
    super(message);
    this.name = 'MlsError';
  }
}

const config = (trust: IdentityTrust): ClientConfig => ({ ...defaultClientConfig, authService: authService(trust) });

function decode(bytes: Uint8Array): MLSMessage {
  const d = (() => {
    try {
      return decodeMlsMessage(bytes, 0);
    } catch {
      return undefined;
    }
  })();
  if (!d || d[1] !== bytes.length) throw new MlsError('not_mls', 'not an MLS message');
  return d[0];
}

const encodeMessage = (m: MLSMessage) => encodeMlsMessage(m);

/**
 * One device's state in one MLS group (a Switchboard conversation): encrypt, decrypt, commit,
 * serialize. Everything ts-mls does for us stays behind this class (and identity.ts,
 * key-package.ts), so the library could be swapped. Every method that moves the state (encrypt,
 * process, applyCommit) replaces it; callers persist `serialize()` before they ack or send what
 * it produced, and never keep using an older copy (that would reuse a key).
 */
export class MlsGroup {
  private constructor(private state: ClientState) {}

  /** A new group with this device as its only member; `ds`: the server, allowed to propose removals. */
  static async create(groupId: Uint8Array, own: DeviceKeyPackage, trust: IdentityTrust, ds?: DeliveryServiceKey): Promise<MlsGroup> {
    const cs = await mlsSuite();
    const extensions = ds ? [{ extensionType: 'external_senders' as const, extensionData: encodeExternalSender(ds) }] : [];
    return new MlsGroup(await createGroup(groupId, own.publicPackage, own.privatePackage, extensions, cs, config(trust)));
  }

  /** Joins from a Welcome (MLSMessage bytes) made for `own` (the tree travels inside it). */
  static async join(welcome: Uint8Array, own: DeviceKeyPackage, trust: IdentityTrust): Promise<MlsGroup> {
    const m = decode(welcome);
    if (m.wireformat !== 'mls_welcome') throw new MlsError('not_mls', 'not a Welcome');
    const cs = await mlsSuite();
    return new MlsGroup(await joinGroup(m.welcome, own.publicPackage, own.privatePackage, emptyPskIndex, cs, undefined, undefined, config(trust)));
  }

  /**
   * Joins (or rejoins after losing state: `resync`) by external commit from the group's GroupInfo;
   * the commit must be sequenced by the conversation before the state is used (`applyCommit`).
   */
  static async joinExternal(groupInfo: Uint8Array, own: DeviceKeyPackage, trust: IdentityTrust): Promise<{ group: MlsGroup; commit: Uint8Array; groupInfo: Uint8Array }> {
    const m = decode(groupInfo);
    if (m.wireformat !== 'mls_group_info') throw new MlsError('not_mls', 'not a GroupInfo');
    const cs = await mlsSuite();
    // A leaf of this same device (as its credential names it) is its former self: the commit
    // removes it (a resync). The device may have lost its signature key too, so the leaf is
    // found by user and device, not by key.
    const me = decodeCredential(own.publicPackage.leafNode.credential);
    const tree = ratchetTreeFromExtension(m.groupInfo);
    const sameDevice = (leafCredential: Credential) => {
      const c = decodeCredential(leafCredential);
      return c !== null && me !== null && c.user === me.user && c.device === me.device;
    };
    const resync = tree ? treeMembers(tree).some((l) => l.user === me?.user && l.device === me?.device) : false;
    const cfg: ClientConfig = {
      ...config(trust),
      keyPackageEqualityConfig: { ...defaultClientConfig.keyPackageEqualityConfig, compareKeyPackageToLeafNode: (kp, leaf) => sameDevice(leaf.credential) && sameDevice(kp.leafNode.credential) },
    };
    const { publicMessage, newState } = await joinGroupExternal(m.groupInfo, own.publicPackage, own.privatePackage, resync, cs, undefined, cfg);
    return { group: new MlsGroup(newState), commit: encodeMessage({ version: 'mls10', wireformat: 'mls_public_message', publicMessage }), groupInfo: await groupInfoOf(newState) };
  }

  /** A state written by `serialize()`. */
  static restore(bytes: Uint8Array, trust: IdentityTrust): MlsGroup {
    const d = decodeGroupState(bytes, 0);
    if (!d) throw new MlsError('not_mls', 'not a serialized group state');
    return new MlsGroup({ ...d[0], clientConfig: config(trust) });
  }

  serialize(): Uint8Array {
    return encodeGroupState(this.state);
  }

  /** The state `pending` leads to, as `serialize()` writes a state (restored with `restore`). */
  static serializePending(pending: PendingCommit): Uint8Array {
    return encodeGroupState(pending.next);
  }

  get epoch(): bigint {
    return this.state.groupContext.epoch;
  }

  get groupId(): Uint8Array {
    return this.state.groupContext.groupId;
  }

  /** False once a commit removed this device. */
  get active(): boolean {
    return this.state.groupActiveState.kind === 'active';
  }

  /** This device's leaf. */
  get leaf(): number {
    return this.state.privatePath.leafIndex;
  }

  members(): GroupMember[] {
    return treeMembers(this.state.ratchetTree);
  }

  /** Leaves of the devices of `user` (all of them, or the named one). */
  leavesOf(user: string, device?: string): number[] {
    return this.members()
      .filter((m) => m.user === user && (device === undefined || m.device === device))
      .map((m) => m.leaf);
  }

  /** A GroupInfo (with the tree and the external public key) the server keeps for external joins. */
  async groupInfo(): Promise<Uint8Array> {
    return groupInfoOf(this.state);
  }

  /** An application message at the current epoch (MLSMessage bytes); the state moves on. */
  async encrypt(plaintext: Uint8Array): Promise<Uint8Array> {
    if (!this.active) throw new MlsError('not_member', 'removed from the group');
    const r = await createApplicationMessage(this.state, plaintext, await mlsSuite());
    this.state = r.newState;
    r.consumed.forEach(zeroOutUint8Array);
    return encodeMessage({ version: 'mls10', wireformat: 'mls_private_message', privateMessage: r.privateMessage });
  }

  /**
   * A commit adding the devices of `add` (KeyPackage MLSMessages) and removing `remove` (leaves),
   * covering the proposals received so far (the server's removals). Not applied: `applyCommit`
   * once the conversation sequenced it; on losing to another commit, drop it and process that one.
   */
  async commit(opts: { add?: Uint8Array[]; remove?: number[] } = {}): Promise<PendingCommit> {
    if (!this.active) throw new MlsError('not_member', 'removed from the group');
    const proposals: Proposal[] = [];
    for (const bytes of opts.add ?? []) {
      const keyPackage = decodeKeyPackage(bytes);
      if (!keyPackage) throw new MlsError('not_mls', 'an added device is not a KeyPackage');
      proposals.push({ proposalType: 'add', add: { keyPackage } });
    }
    for (const removed of opts.remove ?? []) proposals.push({ proposalType: 'remove', remove: { removed } });
    const r = await createCommit({ state: this.state, cipherSuite: await mlsSuite() }, { extraProposals: proposals, wireAsPublicMessage: true, ratchetTreeExtension: true });
    // What it consumed is still the current epoch's: wiped only once the commit is applied.
    return {
      commit: encodeMessage(r.commit),
      welcome: r.welcome ? encodeMessage({ version: 'mls10', wireformat: 'mls_welcome', welcome: r.welcome }) : null,
      groupInfo: await groupInfoOf(r.newState),
      fromEpoch: this.epoch,
      next: r.newState,
      consumed: r.consumed,
    };
  }

  /** The conversation sequenced our commit: its epoch is ours now. */
  applyCommit(pending: PendingCommit): void {
    if (pending.fromEpoch !== this.epoch) throw new MlsError('stale_epoch', `commit from epoch ${pending.fromEpoch}, group at ${this.epoch}`);
    this.state = pending.next;
    pending.consumed.forEach(zeroOutUint8Array);
  }

  /**
   * A message of the group's log, in seq order: an application message (decrypted, with the
   * member who sent it), a commit (the epoch moves on; `removed` when it removed this device) or a
   * proposal (kept for the next commit).
   */
  async process(bytes: Uint8Array): Promise<Processed> {
    const m = decode(bytes);
    const cs = await mlsSuite();
    if (m.wireformat === 'mls_private_message') {
      const pm = m.privateMessage;
      if (!equal(pm.groupId, this.groupId)) throw new MlsError('wrong_group', 'message of another group');
      if (pm.contentType === 'application') return this.application(pm);
      const r = await processPrivateMessage(this.state, pm, emptyPskIndex, cs).catch((err: unknown) => {
        throw new MlsError('rejected', err instanceof Error ? err.message : String(err));
      });
      this.state = r.newState;
      r.consumed.forEach(zeroOutUint8Array);
      return pm.contentType === 'commit' ? { kind: 'commit', epoch: this.epoch, removed: !this.active } : { kind: 'proposal', epoch: this.epoch };
    }
    if (m.wireformat === 'mls_public_message') {
      const pub = m.publicMessage;
      if (!equal(pub.content.groupId, this.groupId)) throw new MlsError('wrong_group', 'message of another group');
      if (pub.content.epoch !== this.epoch) throw new MlsError('stale_epoch', `handshake at epoch ${pub.content.epoch}, group at ${this.epoch}`);
      const r = await processPublicMessage(this.state, pub, emptyPskIndex, cs).catch((err: unknown) => {
        throw new MlsError('rejected', err instanceof Error ? err.message : String(err));
      });
      this.state = r.newState;
      r.consumed.forEach(zeroOutUint8Array);
      return pub.content.contentType === 'commit' ? { kind: 'commit', epoch: this.epoch, removed: !this.active } : { kind: 'proposal', epoch: this.epoch };
    }
    throw new MlsError('not_mls', `unexpected ${m.wireformat}`);
  }

  private async application(pm: Extract<MLSMessage, { wireformat: 'mls_private_message' }>['privateMessage']): Promise<Processed> {
    const cs = await mlsSuite();
    const s = this.state;
    const current = pm.epoch === s.groupContext.epoch;
    const data = current ? { senderDataSecret: s.keySchedule.senderDataSecret, secretTree: s.secretTree, ratchetTree: s.ratchetTree, groupContext: s.groupContext } : s.historicalReceiverData.get(pm.epoch);
    if (!data) throw new MlsError('undecryptable', `no keys for epoch ${pm.epoch} (group at ${s.groupContext.epoch})`);
    let result: Awaited<ReturnType<typeof unprotectPrivateMessage>>;
    try {
      result = await unprotectPrivateMessage(data.senderDataSecret, pm, data.secretTree, data.ratchetTree, data.groupContext, s.clientConfig.keyRetentionConfig, cs);
    } catch (err) {
      throw new MlsError('undecryptable', err instanceof Error ? err.message : String(err));
    }
    const content = result.content.content;
    if (content.contentType !== 'application' || content.sender.senderType !== 'member') throw new MlsError('rejected', 'not a member application message');
    const leaf = content.sender.leafIndex;
    const node = data.ratchetTree[leaf * 2];
    const cred = node?.nodeType === 'leaf' ? decodeCredential(node.leaf.credential) : null;
    if (!cred) throw new MlsError('rejected', 'sender has no credential');
    this.state = current
      ? { ...s, secretTree: result.tree }
      : { ...s, historicalReceiverData: new Map(s.historicalReceiverData).set(pm.epoch, { ...data, secretTree: result.tree } as never) };
    result.consumed.forEach(zeroOutUint8Array);
    return { kind: 'application', plaintext: content.applicationData, sender: { leaf, user: cred.user, device: cred.device }, epoch: pm.epoch };
  }
}

async function groupInfoOf(state: ClientState): Promise<Uint8Array> {
  const gi = await createGroupInfoWithExternalPubAndRatchetTree(state, [], await mlsSuite());
  return encodeMessage({ version: 'mls10', wireformat: 'mls_group_info', groupInfo: gi });
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
