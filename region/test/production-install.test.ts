import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { after, it } from 'node:test';
import { buildRegion } from '../../scripts/build-region.ts';
import { freePort, waitForHttp } from '../../scripts/lib/ports.ts';
import { ROOT } from '../../scripts/lib/processes.ts';

/**
 * The region image without Docker (no engine runs here): region/Dockerfile's steps, read from the
 * Dockerfile itself, run in a temp folder. The build (`npm run build:region`) writes region/dist;
 * the deps stage's COPYs and its `npm ci --omit=dev` make a production install (from the npm cache
 * when it can); then the runtime stage's CMD starts the region on embedded defaults and must answer
 * /healthz (and the HEALTHCHECK command must pass), `region/dist/config-check.js` must run, and
 * SIGTERM must stop it with exit code 0. The install must hold no tsx, esbuild or wrangler, so
 * nothing there can run TypeScript.
 */
const DOCKERFILE = path.join(ROOT, 'region/Dockerfile');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-region-image-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Instructions per stage (`FROM … AS name`), continuation lines joined, comments dropped. */
function stages(dockerfile: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let current: string[] | null = null;
  const lines = dockerfile.replace(/\\\n\s*/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const from = /^FROM \S+ AS (\S+)$/i.exec(line);
    if (from) out.set(from[1]!, (current = []));
    else current?.push(line);
  }
  return out;
}

/** The JSON (exec form) command of an instruction such as `CMD [...]` or `HEALTHCHECK … CMD [...]`. */
const execForm = (line: string): string[] => JSON.parse(line.slice(line.indexOf('['))) as string[];

const clean = (vars: Record<string, string>) => ({ PATH: process.env.PATH!, HOME: process.env.HOME ?? tmp, ...vars });

it('the production build runs from a production install (npm ci --omit=dev, no tsx) and stops on SIGTERM', { timeout: 600_000 }, async () => {
  const spec = stages(fs.readFileSync(DOCKERFILE, 'utf8'));
  const deps = spec.get('deps');
  const runtime = spec.get('runtime');
  assert.ok(deps && runtime && spec.get('build'), 'region/Dockerfile has build, deps and runtime stages');
  assert.ok(spec.get('build')!.includes('RUN npm run build:region'), 'the build stage runs npm run build:region');
  assert.ok(runtime.includes('USER node'), 'the runtime stage runs as the node user');
  assert.ok(runtime.some((l) => l.startsWith('COPY --from=build /app/region/dist region/dist')), 'the runtime stage takes the built region/dist');

  // The build stage: region/dist, here written straight into the install folder.
  const { files } = await buildRegion(path.join(tmp, 'region/dist'));
  assert.ok(files.includes('main.js') && files.includes('config-check.js'), `built ${files.join(', ')}`);
  const bundle = fs.readFileSync(path.join(tmp, 'region/dist/main.js'), 'utf8');
  assert.doesNotMatch(bundle, /from ["']@switchboard\//, 'the workspace sources are bundled in, not imported');

  // The deps stage, instruction by instruction: COPY from the repository, then the install.
  const install = deps.filter((l) => l.startsWith('RUN npm ci'));
  assert.equal(install.length, 1, 'one npm ci in the deps stage');
  const npmArgs = install[0]!.slice('RUN '.length).split(/\s+/);
  assert.ok(npmArgs.includes('--omit=dev'), 'it omits dev dependencies');
  const copyIndex = deps.findIndex((l) => l.startsWith('COPY patches'));
  assert.ok(copyIndex >= 0 && copyIndex < deps.indexOf(install[0]!), 'patches/ is copied before npm ci (the postinstall applies it)');
  for (const line of deps.filter((l) => l.startsWith('COPY '))) {
    const parts = line.split(/\s+/).slice(1);
    const dest = parts.pop()!;
    for (const src of parts) {
      const to = dest === './' ? path.join(tmp, path.basename(src)) : path.join(tmp, dest);
      fs.mkdirSync(path.dirname(to), { recursive: true });
      fs.cpSync(path.join(ROOT, src), to, { recursive: true });
    }
  }
  const t0 = Date.now();
  const npm = spawnSync(npmArgs[0]!, [...npmArgs.slice(1), '--prefer-offline'], { cwd: tmp, env: clean({ npm_config_update_notifier: 'false' }), encoding: 'utf8', timeout: 540_000 });
  assert.equal(npm.status, 0, `npm ci failed:\n${(npm.stdout + npm.stderr).slice(-4000)}`);
  for (const patch of fs.readdirSync(path.join(ROOT, 'patches'))) {
    const [, pkg, version] = /^(.+)\+([^+]+)\.patch$/.exec(patch.replace(/\+\+/g, '/'))!;
    assert.match(npm.stdout + npm.stderr, new RegExp(`${pkg}@${version} ✔`), `patch-package applied ${patch}`);
  }
  for (const dev of ['tsx', 'esbuild', 'wrangler', 'miniflare', 'typescript']) assert.ok(!fs.existsSync(path.join(tmp, 'node_modules', dev)), `${dev} is not in a production install`);
  assert.ok(fs.existsSync(path.join(tmp, 'node_modules/better-sqlite3')), 'the native SQLite driver is installed');
  process.stderr.write(`production install: ${Date.now() - t0} ms\n`);

  // The runtime stage's CMD, on embedded defaults (the image's DATA_DIR, here a temp folder).
  const cmd = execForm(runtime.find((l) => l.startsWith('CMD '))!);
  assert.deepEqual(cmd, ['node', 'region/dist/main.js']);
  const port = await freePort();
  const env = clean({ NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), DATA_DIR: path.join(tmp, 'data'), INTERNAL_SECRET: 'production-install-test-secret' });
  const check = spawnSync(process.execPath, ['region/dist/config-check.js'], { cwd: tmp, env, encoding: 'utf8' });
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, new RegExp(`^PORT +${port} +env +8788$`, 'm'));
  const bad = spawnSync(process.execPath, ['region/dist/config-check.js'], { cwd: tmp, env: { ...env, PORT: 'http' }, encoding: 'utf8' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^ConfigError: PORT: expected an integer/m);

  const region = spawn(process.execPath, cmd.slice(1), { cwd: tmp, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  readline.createInterface({ input: region.stdout! }).on('line', (l) => lines.push(l));
  readline.createInterface({ input: region.stderr! }).on('line', (l) => lines.push(l));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => region.on('exit', (code, signal) => resolve({ code, signal })));
  try {
    await waitForHttp(`http://127.0.0.1:${port}/healthz`, 60_000, () => region.exitCode === null);
  } catch (err) {
    region.kill('SIGKILL');
    assert.fail(`the built region did not answer /healthz: ${(err as Error).message}\n${lines.slice(-30).join('\n')}`);
  }
  const health = (await (await fetch(`http://127.0.0.1:${port}/healthz`)).json()) as { storage?: string };
  assert.equal(health.storage, 'sqlite');
  assert.ok(fs.existsSync(path.join(tmp, 'data')), 'the SQLite file is under DATA_DIR');
  const healthcheck = execForm(runtime.find((l) => l.startsWith('HEALTHCHECK '))!);
  const hc = () => spawnSync(healthcheck[0] === 'node' ? process.execPath : healthcheck[0]!, healthcheck.slice(1), { cwd: tmp, env, encoding: 'utf8', timeout: 10_000 }).status;
  assert.equal(hc(), 0, "the image's HEALTHCHECK passes while the region serves");

  const stopAt = Date.now();
  region.kill('SIGTERM');
  const timer = setTimeout(() => region.kill('SIGKILL'), 20_000);
  const { code, signal } = await exited;
  clearTimeout(timer);
  const ms = Date.now() - stopAt;
  assert.equal(signal, null, `stopped by ${signal} after ${ms} ms (SIGTERM not handled in time)`);
  assert.equal(code, 0, `exit code after SIGTERM:\n${lines.slice(-20).join('\n')}`);
  assert.ok(ms < 15_000, `stopped within 15 s (took ${ms} ms)`);
  for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), `structured log line: ${l}`);
  assert.ok(lines.some((l) => (JSON.parse(l) as { msg?: string }).msg === 'stopped'), 'logged its clean stop');
  assert.notEqual(hc(), 0, 'the HEALTHCHECK fails once the region is gone');
});
