/**
 * `npm run deploy:check [-- <env> …] [--config <wrangler.toml>]`: checks, offline, that each
 * deployed wrangler environment (default: production and staging) ships as configured. Per
 * environment:
 *
 * - `wrangler deploy --dry-run --env <env> --outdir <tmp>` bundles the Worker as a deploy would;
 *   it must exit 0, print no warning (wrangler warns, and still exits 0, when an environment lacks
 *   a key that is not inherited, such as its Durable Object bindings) and write the bundle;
 * - its Durable Object bindings are the top level's (the code uses every one), and its own
 *   migrations create each bound class;
 * - `[observability]` is on and it has routes;
 * - its vars pass the edge's own validation (edge/src/config.ts, with the secrets it reads from
 *   `wrangler secret`), DEV_AUTH is false, no secret is in vars, and the edge reads every var.
 *
 * The web client is built first (it is the Worker's static assets). Exit 0 when every environment
 * passes, 1 otherwise, with each problem logged.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { unstable_readConfig } from 'wrangler';
import { buildWeb } from '../edge/web/build.ts';
import { EDGE_SECRETS, edgeReport } from './lib/edge-config.ts';
import { ROOT } from './lib/processes.ts';

const log = (level: 'info' | 'error', msg: string, fields: Record<string, unknown> = {}) =>
  (level === 'error' ? process.stderr : process.stdout).write(JSON.stringify({ ts: new Date().toISOString(), level, svc: 'deploy-check', msg, ...fields }) + '\n');

const DEPLOYED_ENVS = ['production', 'staging'];

type Migration = { tag: string; new_classes?: string[]; new_sqlite_classes?: string[]; renamed_classes?: { from: string; to: string }[]; deleted_classes?: string[] };

/** What the configuration says, before anything is bundled. */
async function configProblems(env: string, configPath: string): Promise<string[]> {
  const problems: string[] = [];
  const top = unstable_readConfig({ config: configPath }, { hideWarnings: true });
  const cfg = unstable_readConfig({ config: configPath, env }, { hideWarnings: true });
  const bound = new Map<string, string>(cfg.durable_objects.bindings.map((b: { name: string; class_name: string }) => [b.name, b.class_name]));
  for (const b of top.durable_objects.bindings) {
    if (bound.get(b.name) !== b.class_name) problems.push(`durable object binding ${b.name} (${b.class_name}) missing or different in [env.${env}] (bindings are not inherited)`);
  }
  const alive = new Set<string>();
  const tags = new Set<string>();
  for (const m of cfg.migrations as Migration[]) {
    if (tags.has(m.tag)) problems.push(`migration tag ${m.tag} repeated in [env.${env}]`);
    tags.add(m.tag);
    for (const c of [...(m.new_classes ?? []), ...(m.new_sqlite_classes ?? [])]) alive.add(c);
    for (const r of m.renamed_classes ?? []) alive.delete(r.from), alive.add(r.to);
    for (const c of m.deleted_classes ?? []) alive.delete(c);
  }
  for (const [name, cls] of bound) if (!alive.has(cls)) problems.push(`class ${cls} (binding ${name}) is not created by [env.${env}]'s migrations`);
  if (cfg.observability?.enabled !== true) problems.push(`[env.${env}.observability] enabled is not true`);
  if (!cfg.routes?.length && !cfg.route) problems.push(`[env.${env}] has no routes`);
  const vars = cfg.vars as Record<string, unknown>;
  if (vars.DEV_AUTH !== 'false') problems.push(`[env.${env}.vars] DEV_AUTH must be "false" (dev tokens for anyone), got ${JSON.stringify(vars.DEV_AUTH ?? null)}`);
  for (const s of EDGE_SECRETS) if (s in vars) problems.push(`[env.${env}.vars] holds the secret ${s}: use wrangler secret put --env ${env} ${s}`);
  // The secrets themselves live in Cloudflare: a stand-in lets every other setting be validated.
  const report = await edgeReport(env, {}, configPath);
  for (const e of report.errors) problems.push(`${e.type}: ${e.message}`);
  for (const w of report.warnings) if (!/not checked/.test(w)) problems.push(w);
  return problems;
}

/** `wrangler deploy --dry-run` for the environment: the Worker as it would be uploaded. */
function dryRun(env: string, configPath: string): { problems: string[]; output: string; bytes: number } {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), `sb-deploy-${env}-`));
  try {
    const r = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'wrangler'), ['deploy', '--dry-run', '--env', env, '--config', configPath, '--outdir', outdir], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', FORCE_COLOR: '0', CLOUDFLARE_API_TOKEN: '' },
      timeout: 120_000,
    });
    const output = ((r.stdout ?? '') + (r.stderr ?? '')).replace(/\x1b\[[0-9;]*m/g, '');
    const problems: string[] = [];
    if (r.status !== 0) problems.push(`wrangler deploy --dry-run --env ${env} exited ${r.status ?? r.signal}${r.error ? ` (${r.error.message})` : ''}`);
    for (const line of output.split('\n')) if (/\[(WARNING|ERROR)\]/.test(line)) problems.push(`wrangler: ${line.trim()}`);
    const bundle = path.join(outdir, 'index.js');
    const bytes = fs.existsSync(bundle) ? fs.statSync(bundle).size : 0;
    if (r.status === 0 && bytes === 0) problems.push(`wrangler wrote no bundle for ${env}`);
    return { problems, output, bytes };
  } finally {
    fs.rmSync(outdir, { recursive: true, force: true });
  }
}

async function checkDeploy(envs: string[], configPath: string): Promise<boolean> {
  await buildWeb();
  let ok = true;
  for (const env of envs) {
    const t0 = Date.now();
    let problems: string[];
    try {
      problems = await configProblems(env, configPath);
    } catch (err) {
      problems = [err instanceof Error ? err.message : String(err)];
    }
    const run = dryRun(env, configPath);
    problems.push(...run.problems);
    if (problems.length) {
      ok = false;
      log('error', `${env}: not deployable`, { env, problems, wrangler: run.problems.length ? run.output.slice(-3000) : undefined });
    } else log('info', `${env}: deployable`, { env, bundleBytes: run.bytes, ms: Date.now() - t0 });
  }
  return ok;
}

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  const envs: string[] = [];
  let configPath = path.join(ROOT, 'wrangler.toml');
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--config') configPath = path.resolve(args[++i] ?? '');
    else if (args[i]!.startsWith('-')) {
      log('error', `unknown argument ${args[i]} (expected environment names and --config <file>)`);
      return 64;
    } else envs.push(args[i]!);
  }
  return (await checkDeploy(envs.length ? envs : DEPLOYED_ENVS, configPath)) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log('error', 'deploy check failed', { err: err instanceof Error ? err.message : String(err) });
    process.exit(1);
  },
);
