/** `--name value` from the command line, else `dflt`. */
export function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

/** The inspector port and a duration in seconds, checked (shared by the edge's profilers). */
export function portAndSeconds(dfltSeconds: number): { port: number; seconds: number } {
  const port = Number(arg('port', process.env.EDGE_INSPECTOR_PORT ?? '9229'));
  const seconds = Number(arg('seconds', String(dfltSeconds)));
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`--port: expected 1..65535, got ${port}`);
  if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 600) throw new Error(`--seconds: expected 1..600, got ${seconds}`);
  return { port, seconds };
}
