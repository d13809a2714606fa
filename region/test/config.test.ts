import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../src/config.ts';

const base = { INTERNAL_SECRET: 'a-secret-of-enough-length' };

describe('region configuration', () => {
  it('defaults to the embedded backends', () => {
    const c = loadConfig(base);
    assert.equal(c.port, 8788);
    assert.equal(c.cassandra, null);
    assert.equal(c.kafka, null);
    assert.equal(c.redis, null);
    assert.deepEqual([...c.roles], ['api', 'fanout', 'push']);
  });

  it('selects each real engine by its variable, with documented defaults', () => {
    const c = loadConfig({ ...base, CASSANDRA_CONTACT_POINTS: '127.0.0.1:9042, 10.0.0.2', KAFKA_BROKERS: '127.0.0.1:9092', REDIS_URL: 'redis://127.0.0.1:6379', NAMESPACE: 'ci1' });
    assert.deepEqual(c.cassandra?.contactPoints, ['127.0.0.1:9042', '10.0.0.2']);
    assert.equal(c.cassandra?.consistency, 'LOCAL_QUORUM');
    assert.equal(c.cassandra?.keyspace, 'ci1_chat');
    assert.equal(c.kafka?.topicPrefix, 'ci1.');
    assert.equal(c.redis?.prefix, 'ci1:');
    assert.deepEqual(c.cassandra?.replication, { datacenter1: 1 });
    assert.equal(c.name, 'primary');
  });

  it('names its region and replicates a keyspace it creates to each datacenter listed', () => {
    const c = loadConfig({ ...base, REGION_NAME: 'us', CASSANDRA_CONTACT_POINTS: '127.0.0.2', CASSANDRA_LOCAL_DC: 'datacenter2', CASSANDRA_REPLICATION: 'datacenter1=3, datacenter2=3' });
    assert.equal(c.name, 'us');
    assert.deepEqual(c.cassandra?.replication, { datacenter1: 3, datacenter2: 3 });
  });

  it('selects a Redis Cluster by REDIS_CLUSTER_NODES (seed nodes host:port), with the same key prefix', () => {
    const c = loadConfig({ ...base, REDIS_CLUSTER_NODES: ' 10.0.0.1:7000, redis-2.internal:7001,[::1]:7002 ', NAMESPACE: 'ci1' });
    assert.deepEqual(c.redis, { clusterNodes: ['10.0.0.1:7000', 'redis-2.internal:7001', '[::1]:7002'], prefix: 'ci1:' });
    assert.deepEqual(loadConfig({ ...base, REDIS_URL: 'redis://r:6379', REDIS_PREFIX: 'x:' }).redis, { url: 'redis://r:6379', prefix: 'x:' });
  });

  const bad: [Record<string, string>, RegExp][] = [
    [{}, /^INTERNAL_SECRET: expected a secret/],
    [{ ...base, PORT: 'eighty' }, /^PORT: expected an integer in 0\.\.65535, got "eighty"/],
    [{ ...base, REGION_ROLE: 'boss' }, /^REGION_ROLE: expected all or a comma-separated list of api, fanout, push/],
    [{ ...base, REGION_ROLE: 'api,boss' }, /^REGION_ROLE: expected all or a comma-separated list/],
    [{ ...base, CASSANDRA_CONTACT_POINTS: 'http://x:9042' }, /^CASSANDRA_CONTACT_POINTS: expected comma-separated host\[:port\]/],
    [{ ...base, CASSANDRA_CONTACT_POINTS: 'h', CASSANDRA_CONSISTENCY: 'MOST' }, /^CASSANDRA_CONSISTENCY: expected one of/],
    [{ ...base, KAFKA_BROKERS: 'k:9092', KAFKA_PARTITIONS: '0' }, /^KAFKA_PARTITIONS: expected an integer in 1\.\.10000/],
    [{ ...base, REDIS_URL: 'http://redis' }, /^REDIS_URL: expected a redis: or rediss: URL/],
    [{ ...base, REDIS_CLUSTER_NODES: 'r1:7000,r2' }, /^REDIS_CLUSTER_NODES: expected comma-separated host:port, got "r2"/],
    [{ ...base, REDIS_CLUSTER_NODES: 'redis://r1:7000' }, /^REDIS_CLUSTER_NODES: expected comma-separated host:port, got "redis:\/\/r1:7000"/],
    [{ ...base, REDIS_CLUSTER_NODES: 'r1:70000' }, /^REDIS_CLUSTER_NODES: expected comma-separated host:port, got "r1:70000"/],
    [{ ...base, REDIS_CLUSTER_NODES: ' , ' }, /^REDIS_CLUSTER_NODES: expected at least one host:port/],
    [{ ...base, REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'r1:7000' }, /^REDIS_URL, REDIS_CLUSTER_NODES: expected one Redis \(REDIS_URL\) or a Redis Cluster \(REDIS_CLUSTER_NODES\), not both/],
    [{ ...base, ROUTE_TTL_SECONDS: '-5' }, /^ROUTE_TTL_SECONDS: expected an integer/],
    [{ ...base, REGION_NAME: 'US East' }, /^REGION_NAME: expected 1-32 of \[a-z0-9-\]/],
    [{ ...base, CASSANDRA_CONTACT_POINTS: 'h', CASSANDRA_REPLICATION: 'datacenter1:3' }, /^CASSANDRA_REPLICATION: expected datacenter=replicas/],
    [{ ...base, CASSANDRA_CONTACT_POINTS: 'h', CASSANDRA_LOCAL_DC: 'dc2', CASSANDRA_REPLICATION: 'dc1=3' }, /^CASSANDRA_REPLICATION: lists no replicas in the local datacenter dc2/],
  ];
  for (const [env, message] of bad) {
    it(`rejects ${Object.keys(env).filter((k) => k !== 'INTERNAL_SECRET').join(', ') || 'a missing INTERNAL_SECRET'} naming the variable`, () => {
      assert.throws(() => loadConfig(env), (err: unknown) => err instanceof ConfigError && message.test(err.message));
    });
  }
});
