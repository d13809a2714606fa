// Structured logging for the stack scripts: one JSON object per line.
// Every line has `level` and `msg`; engine steps add `engine` and `elapsed_ms`.

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type LineSink = (line: string) => void;

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger that adds `engine` and `elapsed_ms` (since `since`, default now) to each line. */
  child(engine: string, since?: number): Logger;
  readonly sink: LineSink;
}

export const stdoutSink: LineSink = (line) => {
  process.stdout.write(line + '\n');
};

export const stderrSink: LineSink = (line) => {
  process.stderr.write(line + '\n');
};

export function createLogger(sink: LineSink = stdoutSink, engine?: string, since?: number): Logger {
  const emit = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    const rec: Record<string, unknown> = { level, msg };
    if (engine) rec.engine = engine;
    if (since !== undefined) rec.elapsed_ms = Date.now() - since;
    if (fields) for (const [k, v] of Object.entries(fields)) if (v !== undefined) rec[k] = v;
    rec.ts = new Date().toISOString();
    sink(JSON.stringify(rec));
  };
  return {
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (name, start) => createLogger(sink, name, start ?? Date.now()),
    sink,
  };
}
