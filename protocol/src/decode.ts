import type { ZodError, ZodType, ZodTypeDef } from 'zod';
import { ClientFrame, CLIENT_FRAME_TYPES } from './frames.ts';
import { ProtocolError } from './errors.ts';
import { fastClientFrame } from './fast-frames.ts';
import { LIMITS, fitsUtf8 } from './limits.ts';

export type Decoded = { ok: true; frame: ClientFrame } | { ok: false; rid?: string; error: ProtocolError };

/** One line naming the first offending field, safe to show to a client. */
export function describeZodError(err: ZodError): string {
  const issue = err.issues[0];
  if (!issue) return 'invalid';
  const path = issue.path.length ? issue.path.join('.') : '(frame)';
  return `${path}: ${issue.message}`;
}

/**
 * Parses and validates one inbound WebSocket frame. Never throws: every failure is a typed error
 * that carries the frame's `rid` when one could be read, so the reply can be matched.
 */
export function decodeClientFrame(raw: string | ArrayBuffer | ArrayBufferView): Decoded {
  if (typeof raw !== 'string') return { ok: false, error: new ProtocolError('invalid_frame', 'frames must be JSON text, not binary') };
  if (!fitsUtf8(raw, LIMITS.maxFrameBytes)) {
    return { ok: false, rid: sniffRid(raw), error: new ProtocolError('too_large', `frame exceeds ${LIMITS.maxFrameBytes} bytes`) };
  }
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    return { ok: false, error: new ProtocolError('bad_json') };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: new ProtocolError('invalid_frame', 'a frame is a JSON object') };
  }
  const obj = value as Record<string, unknown>;
  const rid = typeof obj.rid === 'string' && obj.rid.length <= LIMITS.maxIdLength ? obj.rid : undefined;
  if (typeof obj.t !== 'string' || !(CLIENT_FRAME_TYPES as readonly string[]).includes(obj.t)) {
    return { ok: false, rid, error: new ProtocolError('unknown_type', `unknown frame type ${JSON.stringify(String(obj.t ?? '')).slice(0, 40)}`) };
  }
  // The frames every message costs (send, ack) are checked by hand first; anything the fast
  // check does not accept goes through the schema, which also words the error.
  const fast = fastClientFrame(obj);
  if (fast) return { ok: true, frame: fast };
  const parsed = ClientFrame.safeParse(obj);
  if (!parsed.success) {
    const tooLarge = parsed.error.issues.some((i) => i.message.includes('exceeds'));
    return { ok: false, rid, error: new ProtocolError(tooLarge ? 'too_large' : 'invalid_frame', describeZodError(parsed.error)) };
  }
  return { ok: true, frame: parsed.data };
}

/** Reads `"rid":"…"` from an oversized frame without parsing all of it. */
function sniffRid(raw: string): string | undefined {
  const m = /"rid"\s*:\s*"([^"\\]{0,128})"/.exec(raw.slice(0, 4096));
  return m?.[1];
}

/** Parses a JSON body and validates it: `bad_json` or `invalid_frame` (naming the field), never a throw of anything else. */
export function parseJsonBody<T>(text: string, schema: ZodType<T, ZodTypeDef, unknown>): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ProtocolError('bad_json', 'body is not valid JSON');
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ProtocolError('invalid_frame', describeZodError(parsed.error));
  return parsed.data;
}
