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
  const services = execFileSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '--services'], { cwd: ROOT, env, encoding: 'utf8' }).trim().split('\n');
  // Services in no profile are the stack `docker compose up` starts.
  assert.deepEqual(services.filter((svc) => !/^ {4}profiles:/m.test(section(config, svc))).sort(), ['cassandra', 'fanout', 'kafka', 'push', 'redis', 'region']);
  assert.match(section(config, 'push'), /REGION_ROLE: push/, 'push workers run on their own');
  for (const svc of ['cassandra', 'kafka', 'redis', 'region']) assert.match(section(config, svc), /healthcheck:/, `${svc} has a healthcheck`);
  assert.match(section(config, 'kafka'), /KAFKA_PROCESS_ROLES: broker,controller/, 'Kafka runs in KRaft mode');
  assert.doesNotMatch(config, /zookeeper/i);
  assert.match(section(config, 'cassandra'), /image: cassandra:5\.0/);
  for (const v of ["cassandra-data", "kafka-data", "redis-data"]) assert.match(config, new RegExp(`- ${v}:/`), `${v} is mounted`);
  const missing = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, env: { ...process.env, INTERNAL_SECRET: '' } });
  assert.notEqual(missing.status, 0, 'the region refuses to be composed without INTERNAL_SECRET');
});

it('the production profile: replicated engines, secrets from files, only the region API published (on loopback)', { skip: !hasCompose && process.env.CI !== 'true' ? why : false }, () => {
  assert.ok(hasCompose, `CI requires it: ${why}`);
  // No INTERNAL_SECRET in the environment: the production services read it from a secret file.
  const env = { ...process.env, INTERNAL_SECRET: 'validation-only-secret' };
  const config = execFileSync('docker-compose', ['-f', 'docker-compose.yml', '--profile', 'production', 'config'], { cwd: ROOT, env, encoding: 'utf8' });
  const services = execFileSync('docker-compose', ['-f', 'docker-compose.yml', '--profile', 'production', 'config', '--services'], { cwd: ROOT, env, encoding: 'utf8' }).trim().split('\n');
  const prod = services.filter((svc) => /^ {4}profiles:\n {4}- production$/m.test(section(config, svc))).sort();
  assert.deepEqual(prod, ['prod-cassandra-1', 'prod-cassandra-2', 'prod-cassandra-3', 'prod-fanout', 'prod-kafka-1', 'prod-kafka-2', 'prod-kafka-3', 'prod-migrate', 'prod-push', 'prod-redis', 'prod-region']);
  for (const svc of prod) {
    const block = section(config, svc);
    if (svc === 'prod-region') assert.match(block, /ports:\n {4}- 127\.0\.0\.1:8788:8788(\/tcp)?\n {4}\S/, 'the region API is published on loopback only (for the TLS proxy)');
    else assert.doesNotMatch(block, /^ {4}(ports|expose):/m, `${svc} publishes no port`);
    assert.doesNotMatch(block, /INTERNAL_SECRET:/, `${svc} takes no secret from the environment`);
  }
  const region = ['prod-migrate', 'prod-region', 'prod-fanout', 'prod-push'];
  for (const svc of region) {
    const block = section(config, svc);
    assert.match(block, /INTERNAL_SECRET_FILE: \/run\/secrets\/internal_secret/, `${svc} reads the secret from its file`);
    assert.match(block, /secrets:\n {4}- source: internal_secret/, `${svc} mounts the secret`);
    assert.match(block, /CASSANDRA_REPLICATION_FACTOR: '3'/);
    assert.match(block, /CASSANDRA_CONSISTENCY: LOCAL_QUORUM/);
    assert.match(block, /KAFKA_REPLICATION_FACTOR: '3'/);
    assert.match(block, /CASSANDRA_CONTACT_POINTS: prod-cassandra-1:9042,prod-cassandra-2:9042,prod-cassandra-3:9042/);
    assert.match(block, /KAFKA_BROKERS: prod-kafka-1:9092,prod-kafka-2:9092,prod-kafka-3:9092/);
  }
  assert.match(section(config, 'prod-migrate'), /- region\/dist\/migrate\.js/);
  assert.match(section(config, 'prod-region'), /prod-migrate:\n {8}condition: service_completed_successfully/, 'the schema is migrated before the region starts');
  assert.match(section(config, 'prod-fanout'), /REGION_ROLE: fanout[\s\S]*replicas: 3|replicas: 3[\s\S]*REGION_ROLE: fanout/);
  for (const n of [1, 2, 3]) {
    const kafka = section(config, `prod-kafka-${n}`);
    assert.match(kafka, new RegExp(`KAFKA_NODE_ID: ${n}\\b`));
    assert.match(kafka, /KAFKA_CONTROLLER_QUORUM_VOTERS: 1@prod-kafka-1:9093,2@prod-kafka-2:9093,3@prod-kafka-3:9093/);
    assert.match(kafka, /KAFKA_MIN_INSYNC_REPLICAS: 2/);
    assert.match(kafka, /KAFKA_DEFAULT_REPLICATION_FACTOR: 3/);
    assert.match(kafka, new RegExp(`- prod-kafka-${n}-data:/var/lib/kafka/data`));
    const cassandra = section(config, `prod-cassandra-${n}`);
    assert.match(cassandra, /CASSANDRA_SEEDS: prod-cassandra-1,prod-cassandra-2/);
    assert.match(cassandra, new RegExp(`- prod-cassandra-${n}-data:/var/lib/cassandra`));
  }
  assert.match(config, /^secrets:\n {2}internal_secret:\n {4}file: .*\/secrets\/internal_secret$/m);
});

/** The normalized YAML block of one service (two-space indented under `services:`). */
function section(yaml: string, service: string): string {
  const lines = yaml.split('\n');
  const start = lines.indexOf(`  ${service}:`);
  assert.ok(start >= 0, `service ${service} present`);
  const end = lines.findIndex((l, i) => i > start && /^ {2}\S/.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}
