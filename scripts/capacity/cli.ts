/**
 * `npm run capacity`: the fleet and the monthly cost for the seed's targets, from the project's own
 * .bench/*.json figures where they exist and documented defaults where they do not.
 *
 *   npm run capacity                                   table on stdout, .bench/capacity.md and .json
 *   npm run capacity -- --inputs                       every input: value, unit, origin, source
 *   npm run capacity -- --set peakMessagesPerSec=10M --set retentionDays=90
 *   npm run capacity -- --bench-dir some/dir           read (and write) elsewhere than .bench/
 *
 * A bad flag or --set exits 2 with one line on stderr. Notes on stderr are JSON lines.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyBenchFiles } from './bench.ts';
import { defaultInputs, InputError, setInput } from './inputs.ts';
import { compute } from './model.ts';
import { renderInputs, renderMarkdown, renderText } from './render.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

class UsageError extends Error {}

function parseArgs(argv: string[]): { sets: [string, string][]; listInputs: boolean; benchDir: string } {
  const sets: [string, string][] = [];
  let listInputs = false;
  let benchDir = path.join(ROOT, '.bench');
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--inputs') listInputs = true;
    else if (a === '--set' || a.startsWith('--set=')) {
      const kv = a === '--set' ? argv[++i] : a.slice('--set='.length);
      const m = kv === undefined ? null : /^([A-Za-z][A-Za-z0-9]*)=(.*)$/.exec(kv);
      if (!m) throw new UsageError(`--set expects name=value, got ${kv === undefined ? 'nothing' : JSON.stringify(kv)}`);
      sets.push([m[1]!, m[2]!]);
    } else if (a === '--bench-dir') {
      const d = argv[++i];
      if (!d) throw new UsageError('--bench-dir expects a directory');
      benchDir = path.resolve(d);
    } else if (a === '--help' || a === '-h') throw new UsageError('usage: npm run capacity -- [--inputs] [--set name=value]… [--bench-dir dir]');
    else throw new UsageError(`unknown argument ${JSON.stringify(a)} (expected --inputs, --set name=value, --bench-dir dir)`);
  }
  return { sets, listInputs, benchDir };
}

const note = (msg: string, fields: Record<string, unknown> = {}) => process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), svc: 'capacity', msg, ...fields }) + '\n');

function main(): number {
  let args;
  const inputs = defaultInputs();
  try {
    args = parseArgs(process.argv.slice(2));
    // Validate overrides before anything is read or written.
    for (const [k, val] of args.sets) setInput(defaultInputs(), k, val, 'override', '');
  } catch (err) {
    if (err instanceof UsageError || err instanceof InputError) {
      process.stderr.write(`capacity: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const reports = applyBenchFiles(inputs, args.benchDir);
  for (const b of reports) note(b.status === 'read' ? 'bench figures read' : 'bench figures not available: defaults used', { file: `.bench/${b.file}`, status: b.status, measured: b.measured.map((m) => m.input), command: b.status === 'read' ? undefined : b.command });
  for (const [k, val] of args.sets) setInput(inputs, k, val, 'override', `--set ${k}=${val}`);
  if (args.listInputs) {
    process.stdout.write(renderInputs(inputs));
    return 0;
  }
  const result = compute(inputs);
  const at = new Date().toISOString();
  process.stdout.write(renderText(result, inputs, reports));
  fs.mkdirSync(args.benchDir, { recursive: true });
  const mdFile = path.join(args.benchDir, 'capacity.md');
  const jsonFile = path.join(args.benchDir, 'capacity.json');
  fs.writeFileSync(mdFile, renderMarkdown(result, inputs, reports, at));
  fs.writeFileSync(jsonFile, JSON.stringify({ at, inputs, bench: reports, result }, null, 2) + '\n');
  note('written', { markdown: path.relative(process.cwd(), mdFile) || mdFile, json: path.relative(process.cwd(), jsonFile) || jsonFile });
  return 0;
}

try {
  process.exitCode = main();
} catch (err) {
  process.stderr.write(`capacity: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
