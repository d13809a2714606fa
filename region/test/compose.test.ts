import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { it } from 'node:test';
import { ROOT } from '../../scripts/lib/processes.ts';

/**
 * No Docker engine runs here, so the operators' docker-compose.yml is validated, not started:
 * Debian's docker-compose parses it against the Compose schema and prints it normalized.
 */
const hasCompose = spawnSync('docker-compose', ['version'], { stdio: 'ignore' }).status === 0;
const why = 'docker-compose is not installed (apt-get install docker-compose; .ci/run does)';

it('docker-compose.yml is a valid Compose file with every regional service, healthchecks and volumes', { skip: !hasCompose && process.env.CI !== 'true' ? why : false }, () => {
  assert.ok(hasCompose, `CI requires it: ${why}`);
  const env = { ...process.env, INTERNAL_SECRET: 'validation-only-secret' };
  const config = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config'], { cwd: ROOT, env, encoding: 'utf8' });
  const services = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '--services'], { cwd: ROOT, env, encoding: 'utf8' }).trim().split('\n').sort();
  assert.deepEqual(services, ['cassandra', 'fanout', 'kafka', 'push', 'redis', 'region']);
  assert.match(section(config, 'push'), /REGION_ROLE: push/, 'push workers run on their own');
  for (const svc of ['cassandra', 'kafka', 'redis', 'region']) assert.match(section(config, svc), /healthcheck:/, `${svc} has a healthcheck`);
  assert.match(section(config, 'kafka'), /KAFKA_PROCESS_ROLES: broker,controller/, 'Kafka runs in KRaft mode');
  assert.doesNotMatch(config, /zookeeper/i);
  assert.match(section(config, 'cassandra'), /image: cassandra:5\.0/);
  for (const v of ["cassandra-data", "kafka-data", "redis-data"]) assert.match(config, new RegExp(`- ${v}:/`), `${v} is mounted`);
  const missing = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, env: { ...process.env, INTERNAL_SECRET: '' } });
  assert.notEqual(missing.status, 0, 'the region refuses to be composed without INTERNAL_SECRET');
});

/** The normalized YAML block of one service (two-space indented under `services:`). */
function section(yaml: string, service: string): string {
  const lines = yaml.split('\n');
  const start = lines.indexOf(`  ${service}:`);
  assert.ok(start >= 0, `service ${service} present`);
  const end = lines.findIndex((l, i) => i > start && /^ {2}\S/.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}
