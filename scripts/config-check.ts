/**
 * `npm run config:check [-- --edge <env>] [--json]`: validates this environment exactly as region
 * start-up does (region/src/config-report.ts) and, with `--edge production|staging` (or `--edge
 * dev`: the top level of wrangler.toml), the edge's settings for that wrangler environment with the
 * edge's own validation (scripts/lib/edge-config.ts). Prints every setting with its value (secrets
 * masked), its source and its default. Exit codes: 0 valid, 2 invalid (each ConfigError printed),
 * 64 bad arguments.
 */
import { formatReport, regionReport, type ConfigReport } from '../region/src/config-report.ts';
import { edgeReport } from './lib/edge-config.ts';

function usage(msg: string): never {
  process.stderr.write(`config:check: ${msg}\nusage: npm run config:check [-- --edge production|staging|dev] [--json]\n`);
  process.exit(64);
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let edge: string | undefined;
  let json = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--json') json = true;
    else if (args[i] === '--edge') edge = args[++i] ?? usage('--edge needs a wrangler environment');
    else usage(`unknown argument ${args[i]}`);
  }
  const reports: ConfigReport[] = [regionReport(process.env)];
  if (edge !== undefined) reports.push(await edgeReport(edge === 'dev' ? null : edge, process.env));
  const ok = reports.every((r) => r.ok);
  if (json) process.stdout.write(JSON.stringify({ ok, reports }) + '\n');
  else for (const r of reports) (r.ok ? process.stdout : process.stderr).write(formatReport(r) + '\n');
  return ok ? 0 : 2;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`config:check failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
