/**
 * Production build of the regional core (`npm run build:region`): bundles region/src into
 * JavaScript under region/dist for Node 20 (ESM), so a production install (no tsx, no dev
 * dependencies) runs it with plain `node region/dist/main.js`.
 *
 * - main.js: the region (every role); config-check.js: `npm run config:check` in the image;
 *   migrate.js: the Cassandra schema migrations (`npm run migrate`), run once per deploy.
 * - npm packages stay external (`packages: 'external'`): native modules (better-sqlite3), the
 *   Cassandra and Kafka drivers and the rest load from node_modules, as installed by
 *   `npm ci --omit=dev`. Our own workspace, @switchboard/protocol, ships TypeScript sources, so it
 *   is bundled in, resolved through its package.json `exports`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const REGION = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../region');
export const REGION_DIST = path.join(REGION, 'dist');
export const REGION_ENTRIES = { main: 'src/main.ts', 'config-check': 'src/config-check.ts', migrate: 'src/storage/migrate.ts' };

/** `@switchboard/<name>[/sub]` → that workspace's TypeScript source, by its package.json exports. */
const workspaceSources: Plugin = {
  name: 'workspace-sources',
  setup(b) {
    b.onResolve({ filter: /^@switchboard\/[^/]+(\/.*)?$/ }, (args) => {
      const [, name, sub = ''] = /^@switchboard\/([^/]+)(\/.*)?$/.exec(args.path)!;
      const dir = path.join(REGION, '..', name!);
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { exports?: Record<string, string> };
      const target = pkg.exports?.[`.${sub}`];
      if (!target) return { errors: [{ text: `${args.path}: not exported by ${name}/package.json` }] };
      return { path: path.join(dir, target) };
    });
  },
};

export async function buildRegion(outdir = REGION_DIST): Promise<{ dir: string; files: string[] }> {
  // Written beside, then renamed into place: a region starting meanwhile never reads half a file.
  fs.mkdirSync(outdir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(outdir, '.build-'));
  try {
    await build({
      entryPoints: Object.fromEntries(Object.entries(REGION_ENTRIES).map(([out, src]) => [out, path.join(REGION, src)])),
      outdir: tmp,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      plugins: [workspaceSources],
      sourcemap: true,
      logLevel: 'warning',
    });
    const files = fs.readdirSync(tmp).sort();
    for (const f of files) fs.renameSync(path.join(tmp, f), path.join(outdir, f));
    return { dir: outdir, files };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const t0 = Date.now();
  buildRegion().then(
    ({ dir, files }) => process.stdout.write(JSON.stringify({ ts: new Date().toISOString(), level: 'info', svc: 'build-region', msg: 'built', dir, files, ms: Date.now() - t0 }) + '\n'),
    (err) => {
      process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'error', svc: 'build-region', msg: 'build failed', err: err instanceof Error ? err.message : String(err) }) + '\n');
      process.exit(1);
    },
  );
}
