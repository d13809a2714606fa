/**
 * `npm run config:check` (and `node region/dist/config-check.js` in the region image): validates
 * this environment exactly as region start-up does and prints every setting with its value
 * (secrets masked), its source and its default. `--json` prints the report as one JSON object.
 * Exit codes as at start-up: 0 valid, 2 invalid configuration (each ConfigError printed).
 */
import { formatReport, regionReport } from './config-report.ts';

const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== '--json');
if (unknown.length) {
  process.stderr.write(`config-check: unknown argument ${unknown[0]} (expected --json)\n`);
  process.exit(64);
}
const report = regionReport(process.env);
if (args.includes('--json')) process.stdout.write(JSON.stringify(report) + '\n');
else (report.ok ? process.stdout : process.stderr).write(formatReport(report));
process.exit(report.ok ? 0 : 2);
