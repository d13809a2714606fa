/** A numeric benchmark setting from the environment: `dflt` when unset; out of range exits 2 naming the variable. */
export function num(name: string, dflt: number, min: number, max: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || n > max) {
    console.error(`${name}: expected a number in ${min}..${max}, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}
