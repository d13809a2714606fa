import { fromBase64Url } from '../../mls-wire.ts';

/** base64url without padding, as MLS messages travel in JSON. */
export const b64 = {
  encode(bytes: Uint8Array): string {
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
  /** Throws on text that is not base64url (`fromBase64Url` answers null instead). */
  decode(text: string): Uint8Array {
    const bytes = fromBase64Url(text);
    if (!bytes) throw new Error('not base64url');
    return bytes;
  },
};
