import type { AckFrame, ClientFrame, SendFrame } from './frames.ts';
import { CONV_ID_PATTERN } from './ids.ts';
import { LIMITS, fitsUtf8 } from './limits.ts';

const isRid = (v: unknown): v is string | undefined => v === undefined || (typeof v === 'string' && v.length <= LIMITS.maxIdLength);
const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isConv = (v: unknown): v is string => typeof v === 'string' && CONV_ID_PATTERN.test(v);

/**
 * The hot client frames (`send`, `ack`: one or more per message) checked by hand, to spare each
 * message the schema's cost. Contract: it accepts only what `ClientFrame` accepts, and returns
 * what the schema would (known fields only); null means "ask the schema", never "invalid".
 */
export function fastClientFrame(obj: Record<string, unknown>): ClientFrame | null {
  const { t, rid } = obj;
  if (!isRid(rid)) return null;
  if (t === 'ack') {
    const { conv, seq } = obj;
    if (!isConv(conv) || !isSeq(seq)) return null;
    const frame: AckFrame = { t, conv, seq };
    if (rid !== undefined) frame.rid = rid;
    return frame;
  }
  if (t === 'send') {
    const { conv, cmid, body } = obj;
    if (!isConv(conv) || typeof cmid !== 'string' || cmid.length < 1 || cmid.length > LIMITS.maxIdLength) return null;
    if (typeof body !== 'string' || !fitsUtf8(body, LIMITS.maxBodyBytes)) return null;
    const frame: SendFrame = { t, conv, cmid, body };
    if (rid !== undefined) frame.rid = rid;
    return frame;
  }
  return null;
}
