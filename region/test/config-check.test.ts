import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.ts';
import { regionReport, type ConfigReport, type SettingRow } from '../src/config-report.ts';
import { ROOT } from '../../scripts/lib/processes.ts';

/**
 * `npm run config:check`: the environment is validated as region start-up validates it, every
 * setting is listed with its value, source and default, secrets never appear, and an invalid value
 * exits non-zero with the ConfigError start-up would stop on.
 */
const SECRET = 'correct-horse-battery-staple-42';
const REDIS_PASSWORD = 'hunter2-redis-pw';
/** A clean environment: nothing of this machine's leaks into the check. */
const clean = (vars: Record<string, string>) => ({ PATH: process.env.PATH!, HOME: process.env.HOME ?? '/tmp', ...vars });

function check(vars: Record<string, string>, ...args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/config-check.ts', ...args], { cwd: ROOT, env: clean(vars), encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function reports(vars: Record<string, string>, ...args: string[]): { status: number | null; ok: boolean; reports: ConfigReport[]; raw: string } {
  const r = check(vars, '--json', ...args);
  const parsed = JSON.parse(r.stdout) as { ok: boolean; reports: ConfigReport[] };
  return { status: r.status, ...parsed, raw: r.stdout + r.stderr };
}

const rowOf = (r: ConfigReport, name: string): SettingRow => {
  const row = r.rows.find((x) => x.name === name);
  assert.ok(row, `${name} is listed in ${r.subject}`);
  return row;
};

describe('config:check', () => {
  it('lists every setting of a valid environment with value, source and default, secrets masked', () => {
    const env = { INTERNAL_SECRET: SECRET, PORT: '9999', REDIS_URL: `redis://:${REDIS_PASSWORD}@redis.internal:6379`, PUSH_RATE_PER_HOUR: '120' };
    const r = reports(env);
    assert.equal(r.status, 0, r.raw);
    const region = r.reports[0]!;
    assert.equal(region.ok, true);
    assert.deepEqual(region.errors, []);
    assert.deepEqual(rowOf(region, 'PORT'), { name: 'PORT', value: '9999', source: 'env', default: '8788' });
    assert.deepEqual(rowOf(region, 'HOST'), { name: 'HOST', value: '127.0.0.1', source: 'default', default: '127.0.0.1' });
    assert.deepEqual(rowOf(region, 'PUSH_RATE_PER_HOUR'), { name: 'PUSH_RATE_PER_HOUR', value: '120', source: 'env', default: '60' });
    assert.deepEqual(rowOf(region, 'INTERNAL_SECRET'), { name: 'INTERNAL_SECRET', value: `****** (${SECRET.length} characters)`, source: 'env', default: 'required' });
    assert.equal(rowOf(region, 'REDIS_URL').value, 'redis://:******@redis.internal:6379');
    // Settings read only with an engine configured are listed then, with their defaults.
    assert.deepEqual(rowOf(region, 'REDIS_PREFIX'), { name: 'REDIS_PREFIX', value: 'sb:', source: 'default', default: 'sb:' });
    assert.ok(!region.rows.some((x) => x.name === 'CASSANDRA_KEYSPACE'), 'no Cassandra: its settings are not read');
    for (const name of ['NAMESPACE', 'REGION_ROLE', 'DATA_DIR', 'ROUTE_TTL_SECONDS', 'FANOUT_BATCH', 'PRESENCE_TTL_SECONDS', 'PUSH_FALLBACK', 'KEYS_CLAIM_BURST', 'LOG_LEVEL']) rowOf(region, name);
    const table = check(env);
    assert.equal(table.status, 0);
    assert.match(table.stdout, /^region: valid$/m);
    assert.match(table.stdout, /^PORT +9999 +env +8788$/m);
    for (const out of [r.raw, table.stdout + table.stderr]) {
      assert.ok(!out.includes(SECRET), 'the secret is never printed');
      assert.ok(!out.includes(REDIS_PASSWORD), "Redis's password is never printed");
    }
  });

  it('exits 2 with the ConfigError region start-up stops on, and names every invalid variable', () => {
    const env = { PORT: 'eighty', REGION_ROLE: 'boss', FANOUT_BATCH: '0' };
    const r = reports(env);
    assert.equal(r.status, 2, r.raw);
    const region = r.reports[0]!;
    assert.equal(region.ok, false);
    assert.deepEqual(region.errors, [
      { type: 'ConfigError', message: 'PORT: expected an integer in 0..65535, got "eighty"' },
      { type: 'ConfigError', message: 'INTERNAL_SECRET: expected a secret of at least 16 characters' },
      { type: 'ConfigError', message: 'REGION_ROLE: expected all or a comma-separated list of api, fanout, push, got "boss"' },
      { type: 'ConfigError', message: 'FANOUT_BATCH: expected an integer in 1..1000, got "0"' },
    ]);
    assert.equal(rowOf(region, 'PORT').invalid, region.errors[0]!.message);
    assert.equal(rowOf(region, 'ROUTE_TTL_SECONDS').invalid, undefined, 'valid settings after an invalid one are still checked');
    const table = check(env);
    assert.equal(table.status, 2);
    assert.match(table.stderr, /^ConfigError: PORT: expected an integer in 0\.\.65535, got "eighty"$/m);
    // Start-up itself stops on the first of them, with the same message and exit code.
    const start = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'region/src/main.ts')], { cwd: ROOT, env: clean(env), encoding: 'utf8', timeout: 60_000 });
    assert.equal(start.status, 2);
    const line = JSON.parse(start.stderr.trim().split('\n').at(-1)!) as { msg: string; err: string };
    assert.equal(line.msg, 'invalid configuration');
    assert.equal(line.err, region.errors[0]!.message);
  });

  it('lists REDIS_CLUSTER_NODES, and names both Redis variables when both are set', () => {
    const cluster = regionReport({ INTERNAL_SECRET: SECRET, REDIS_CLUSTER_NODES: 'r1:7000,r2:7001' });
    assert.equal(cluster.ok, true);
    assert.deepEqual(rowOf(cluster, 'REDIS_CLUSTER_NODES'), { name: 'REDIS_CLUSTER_NODES', value: 'r1:7000,r2:7001', source: 'env', default: 'unset: no Redis Cluster' });
    assert.deepEqual(rowOf(cluster, 'REDIS_PREFIX'), { name: 'REDIS_PREFIX', value: 'sb:', source: 'default', default: 'sb:' });
    assert.equal(rowOf(regionReport({ INTERNAL_SECRET: SECRET }), 'REDIS_CLUSTER_NODES').source, 'default');
    const both = regionReport({ INTERNAL_SECRET: SECRET, REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'r1:7000' });
    assert.equal(both.ok, false);
    assert.deepEqual(both.errors.map((e) => e.message), ['REDIS_URL, REDIS_CLUSTER_NODES: expected one Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES), not both']);
    assert.ok(rowOf(both, 'REDIS_URL').invalid && rowOf(both, 'REDIS_CLUSTER_NODES').invalid);
    const bad = regionReport({ INTERNAL_SECRET: SECRET, REDIS_CLUSTER_NODES: 'r1' });
    assert.deepEqual(bad.errors.map((e) => e.message), ['REDIS_CLUSTER_NODES: expected comma-separated host:port, got "r1"']);
  });

  it('takes the secret from INTERNAL_SECRET_FILE (a Compose secret), never printing it', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-secret-'));
    try {
      const file = path.join(dir, 'internal_secret');
      fs.writeFileSync(file, `${SECRET}\n`);
      assert.equal(loadConfig({ INTERNAL_SECRET_FILE: file }).internalSecret, SECRET, 'the trailing newline is dropped');
      const report = regionReport({ INTERNAL_SECRET_FILE: file });
      assert.equal(report.ok, true);
      assert.deepEqual(rowOf(report, 'INTERNAL_SECRET'), { name: 'INTERNAL_SECRET', value: '****** (from INTERNAL_SECRET_FILE)', source: 'file', default: 'required' });
      assert.deepEqual(rowOf(report, 'INTERNAL_SECRET_FILE'), { name: 'INTERNAL_SECRET_FILE', value: file, source: 'env', default: 'unset' });
      assert.ok(!JSON.stringify(report).includes(SECRET));
      const both = (env: Record<string, string>) => assert.throws(() => loadConfig(env), (e: unknown) => e instanceof ConfigError && /^INTERNAL_SECRET_FILE: /.test(e.message));
      both({ INTERNAL_SECRET: SECRET, INTERNAL_SECRET_FILE: file });
      both({ INTERNAL_SECRET_FILE: path.join(dir, 'missing') });
      fs.writeFileSync(file, 'short\n');
      both({ INTERNAL_SECRET_FILE: file });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("checks a wrangler environment's edge settings with the edge's own validation", () => {
    const r = reports({ INTERNAL_SECRET: SECRET, AUTH_SECRET: `${SECRET}-auth` }, '--edge', 'production');
    assert.equal(r.status, 0, r.raw);
    const edge = r.reports[1]!;
    assert.equal(edge.subject, 'edge (production)');
    assert.deepEqual(rowOf(edge, 'REGION_URL'), { name: 'REGION_URL', value: 'https://region.example.com', source: 'wrangler.toml [env.production]', default: 'required' });
    assert.deepEqual(rowOf(edge, 'DEV_AUTH'), { name: 'DEV_AUTH', value: 'false', source: 'wrangler.toml [env.production]', default: 'false' });
    assert.deepEqual(rowOf(edge, 'RETRANSMIT_MS'), { name: 'RETRANSMIT_MS', value: '3000', source: 'default', default: '3000' });
    assert.equal(rowOf(edge, 'AUTH_SECRET').value, `****** (${SECRET.length + 5} characters)`);
    for (const row of edge.rows) assert.notEqual(row.value, 'undefined', `${row.name} maps to the edge's parsed setting`);
    assert.ok(!r.raw.includes(SECRET));
    // Without the secrets here, they are reported as not checked; a bad secret fails.
    const unchecked = reports({ INTERNAL_SECRET: SECRET }, '--edge', 'staging');
    assert.equal(unchecked.status, 0, unchecked.raw);
    assert.match(unchecked.reports[1]!.warnings.join('\n'), /AUTH_SECRET: not in this environment, not checked \(wrangler secret put --env staging AUTH_SECRET\)/);
    const short = reports({ INTERNAL_SECRET: SECRET, AUTH_SECRET: 'short' }, '--edge', 'production');
    assert.equal(short.status, 2);
    assert.deepEqual(short.reports[1]!.errors, [{ type: 'ConfigError', message: 'AUTH_SECRET: expected a secret of at least 16 characters' }]);
  });
});
