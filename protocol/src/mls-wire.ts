import type { DeviceRef } from './keys.ts';

/**
 * What the server reads of an MLS message (RFC 9420 §6) without any key: its wire format and,
 * for handshake and application messages, the group, the epoch and the content type (plus the
 * sender of a PublicMessage). The conversation's Delivery Service decides with these alone; the
 * rest stays opaque. A small parser of our own, so the edge needs no MLS library to sequence.
 */

export type MlsWireFormat = 'public' | 'private' | 'welcome' | 'group_info' | 'key_package';
export type MlsContentType = 'application' | 'proposal' | 'commit';

export interface MlsHeader {
  wireFormat: MlsWireFormat;
  /** Hex of group_id (public and private messages). */
  groupId?: string;
  epoch?: bigint;
  contentType?: MlsContentType;
  /** A PublicMessage's sender: a member's leaf, an external sender's index, or a new member. */
  sender?: { type: 'member'; leaf: number } | { type: 'external'; index: number } | { type: 'new_member_proposal' | 'new_member_commit' };
}

const WIRE: Record<number, MlsWireFormat> = { 1: 'public', 2: 'private', 3: 'welcome', 4: 'group_info', 5: 'key_package' };
const CONTENT: Record<number, MlsContentType> = { 1: 'application', 2: 'proposal', 3: 'commit' };

class Reader {
  private at = 0;
  constructor(private readonly b: Uint8Array) {}
  u8(): number {
    if (this.at + 1 > this.b.length) throw new RangeError('truncated');
    return this.b[this.at++]!;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  u32(): number {
    return ((this.u16() << 16) >>> 0) + this.u16();
  }
  u64(): bigint {
    return (BigInt(this.u32()) << 32n) + BigInt(this.u32());
  }
  /** RFC 9420 §2.1.2 variable-length vector: a 1, 2 or 4 byte length, then the bytes. */
  vector(): Uint8Array {
    const first = this.u8();
    const prefix = first >> 6;
    let len = first & 0x3f;
    if (prefix === 1) len = (len << 8) | this.u8();
    else if (prefix === 2) len = ((len << 24) >>> 0) + (this.u8() << 16) + (this.u8() << 8) + this.u8();
    else if (prefix === 3) throw new RangeError('invalid vector length prefix');
    if (this.at + len > this.b.length) throw new RangeError('truncated');
    const out = this.b.subarray(this.at, this.at + len);
    this.at += len;
    return out;
  }
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

/** The header of MLSMessage bytes, or null when they are not an MLS 1.0 message we can read. */
export function readMlsHeader(bytes: Uint8Array): MlsHeader | null {
  try {
    const r = new Reader(bytes);
    if (r.u16() !== 1) return null; // mls10
    const wireFormat = WIRE[r.u16()];
    if (!wireFormat) return null;
    if (wireFormat === 'private') {
      const groupId = hex(r.vector());
      const epoch = r.u64();
      const contentType = CONTENT[r.u8()];
      if (!contentType) return null;
      return { wireFormat, groupId, epoch, contentType };
    }
    if (wireFormat === 'public') {
      const groupId = hex(r.vector());
      const epoch = r.u64();
      const senderType = r.u8();
      let sender: MlsHeader['sender'];
      if (senderType === 1) sender = { type: 'member', leaf: r.u32() };
      else if (senderType === 2) sender = { type: 'external', index: r.u32() };
      else if (senderType === 3) sender = { type: 'new_member_proposal' };
      else if (senderType === 4) sender = { type: 'new_member_commit' };
      else return null;
      r.vector(); // authenticated_data
      const contentType = CONTENT[r.u8()];
      if (!contentType) return null;
      return { wireFormat, groupId, epoch, contentType, sender };
    }
    return { wireFormat };
  } catch {
    return null;
  }
}

/** base64url (no padding) → bytes, or null when it is not base64url. */
export function fromBase64Url(text: string): Uint8Array | null {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
  const s = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/**
 * `GET /v1/conversations/:id/mls`: what a member's device needs to commit what waits (and
 * whether it is the device asked to), to join from a Welcome, or to rejoin by external commit.
 */
export interface MlsView {
  epoch: string;
  rekeyPending: boolean;
  pendingAdds: string[];
  pendingRemoves: string[];
  pendingLinks: DeviceRef[];
  pendingRevokes: DeviceRef[];
  /** The device asked to commit what waits (null: any member's). */
  committer: DeviceRef | null;
  /** Base64url GroupInfo of the last commit (null before the first, and for former members). */
  groupInfo: string | null;
  /** Welcomes naming the user since their join, base64url MLSMessages. */
  welcomes: { seq: number; welcome: string }[];
}

