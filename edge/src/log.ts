/** Structured log lines: one JSON object per line, as the Workers runtime and `wrangler tail` expect. */
export function log(level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ level, msg, svc: 'edge', ...fields });
  if (level === 'error') console.error(line);
  else if (level === 'warn') console.warn(line);
  else console.log(line);
}

export function errorFields(err: unknown): Record<string, unknown> {
  return err instanceof Error ? { err: err.message, errName: err.name } : { err: String(err) };
}
