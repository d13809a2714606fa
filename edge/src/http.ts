import type { Context } from 'hono';
import type { ZodType, ZodTypeDef } from 'zod';
import { LIMITS, ProtocolError, describeZodError } from '@switchboard/protocol';

/** Reads a JSON body within the size limit and validates it; every defect is a typed 4xx. */
export async function readJson<T>(c: Context, schema: ZodType<T, ZodTypeDef, unknown>, maxBytes: number = LIMITS.maxHttpBodyBytes): Promise<T> {
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > maxBytes) throw new ProtocolError('too_large', `body exceeds ${maxBytes} bytes`);
  const text = await c.req.text();
  if (text.length > maxBytes) throw new ProtocolError('too_large', `body exceeds ${maxBytes} bytes`);
  return parseJson(text, schema);
}

export function parseJson<T>(text: string, schema: ZodType<T, ZodTypeDef, unknown>): T {
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

export function errorBody(err: ProtocolError): { error: { code: string; message: string } } {
  return { error: { code: err.code, message: err.message } };
}
