import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { ROOT } from '../../scripts/lib/processes.ts';

/**
 * `npm run deploy:check`: wrangler.toml's deployed environments bundle offline (`wrangler deploy
 * --dry-run --env …`) and are configured as a deploy needs; a broken environment or a Worker that
 * does not build fails it. The broken cases are copies of wrangler.toml with one thing wrong.
 */
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-deploy-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function deployCheck(...args: string[]): { status: number | null; lines: { level: string; msg: string; env?: string; problems?: string[] }[]; out: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/deploy-check.ts', ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
  const out = r.stdout + r.stderr;
  const lines = out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { level: string; msg: string; env?: string; problems?: string[] });
  return { status: r.status, lines, out };
}

/** wrangler.toml with `edit` applied, in a temp folder (paths made absolute). */
function brokenConfig(name: string, edit: (toml: string) => string): string {
  const original = fs.readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8')
    .replace(/^main = "(.+)"$/m, (_, p: string) => `main = "${path.join(ROOT, p)}"`)
    .replace(/^directory = "(.+)"$/m, (_, p: string) => `directory = "${path.join(ROOT, p)}"`);
  const edited = edit(original);
  assert.notEqual(edited, original, `${name}: the edit changed nothing`);
  const file = path.join(tmp, `${name}.toml`);
  fs.writeFileSync(file, edited);
  return file;
}

/** Removes the TOML blocks whose header matches, up to the next header that does not. */
const withoutBlocks = (toml: string, header: RegExp) =>
  toml.split(/\n(?=\[)/).filter((block) => !header.test(block.split('\n')[0]!)).join('\n');

const problemsOf = (r: ReturnType<typeof deployCheck>, env: string) => r.lines.find((l) => l.env === env && l.level === 'error')?.problems ?? [];

describe('deploy:check', () => {
  it('production and staging bundle offline and are deployable as configured', () => {
    const r = deployCheck();
    assert.equal(r.status, 0, r.out);
    for (const env of ['production', 'staging']) assert.ok(r.lines.some((l) => l.env === env && l.msg === `${env}: deployable`), `${env} checked:\n${r.out}`);
  });

  it('fails an environment without its own Durable Object bindings (wrangler only warns)', () => {
    const r = deployCheck('production', '--config', brokenConfig('no-bindings', (t) => withoutBlocks(t, /^\[\[env\.production\.durable_objects\.bindings\]\]/)));
    assert.equal(r.status, 1, r.out);
    const problems = problemsOf(r, 'production').join('\n');
    assert.match(problems, /durable object binding GATEWAYS \(GatewayDO\) missing/);
    assert.match(problems, /wrangler: .*WARNING/);
  });

  it('fails a bound class that no migration of the environment creates', () => {
    const file = brokenConfig('no-migration', (t) =>
      t.replace(/(\[\[env\.staging\.migrations\]\]\ntag = "v1"\n)new_sqlite_classes = \[.*\]/, '$1new_sqlite_classes = ["GatewayDO", "ReplayGuardDO"]'),
    );
    const r = deployCheck('staging', '--config', file);
    assert.equal(r.status, 1, r.out);
    assert.match(problemsOf(r, 'staging').join('\n'), /class ConversationDO \(binding CONVERSATIONS\) is not created/);
  });

  it('fails dev sign-in, a value the edge rejects, and missing observability', () => {
    const file = brokenConfig('bad-vars', (t) =>
      withoutBlocks(t, /^\[env\.production\.observability\]/)
        .replace(/(\[env\.production\.vars\][\s\S]*?)DEV_AUTH = "false"/, '$1DEV_AUTH = "true"')
        .replace('REGION_URL = "https://region.example.com"', 'REGION_URL = "region.example.com"'),
    );
    const r = deployCheck('production', '--config', file);
    assert.equal(r.status, 1, r.out);
    const problems = problemsOf(r, 'production').join('\n');
    assert.match(problems, /DEV_AUTH must be "false"/);
    assert.match(problems, /ConfigError: REGION_URL: expected an http\(s\) URL/);
    assert.match(problems, /observability\] enabled is not true/);
  });

  it('fails a Worker that does not build', () => {
    const entry = path.join(tmp, 'broken-worker.ts');
    fs.writeFileSync(entry, 'export default { fetch( };\n');
    const r = deployCheck('production', '--config', brokenConfig('broken-build', (t) => t.replace(/^main = ".+"$/m, `main = "${entry}"`)));
    assert.equal(r.status, 1, r.out);
    assert.match(problemsOf(r, 'production').join('\n'), /wrangler deploy --dry-run --env production exited 1/);
  });
});
