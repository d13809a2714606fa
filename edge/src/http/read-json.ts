import type { Context } from 'hono';
import type { ZodType, ZodTypeDef } from 'zod';
import { LIMITS, ProtocolError, parseJsonBody } from '@switchboard/protocol';

/** Reads a JSON body within the size limit and validates it; every defect is a typed 4xx. */
export async function readJson<T>(c: Context, schema: ZodType<T, ZodTypeDef, unknown>, maxBytes: number = LIMITS.maxHttpBodyBytes): Promise<T> {
  const declared = Number(c.req.header('content-length') ?? '0');
  if (declared > maxBytes) throw new ProtocolError('too_large', `body exceeds ${maxBytes} bytes`);
  const text = await c.req.text();
  if (text.length > maxBytes) throw new ProtocolError('too_large', `body exceeds ${maxBytes} bytes`);
  return parseJsonBody(text, schema);
}

export function errorBody(err: ProtocolError): { error: { code: string; message: string } } {
  return { error: { code: err.code, message: err.message } };
}
