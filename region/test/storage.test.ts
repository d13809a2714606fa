import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import cassandra from 'cassandra-driver';
import { createLogger } from '../src/log.ts';
import { CassandraStorage } from '../src/storage-cassandra.ts';
import { SqliteStorage } from '../src/storage-sqlite.ts';
import { engineSuite, runId } from './engines.ts';
import { storageContract } from './storage.contract.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-storage-'));
storageContract('sqlite', async () => new SqliteStorage(path.join(dir, 'region.sqlite')));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

engineSuite('storage', 'cassandra', (points) => {
  const contactPoints = points.split(',').map((s) => s.trim()).filter(Boolean);
  const localDataCenter = process.env.TEST_CASSANDRA_LOCAL_DC || 'datacenter1';
  const keyspace = `sbtest_${runId()}`;
  const cfg = { contactPoints, localDataCenter, keyspace, consistency: 'LOCAL_QUORUM', replicationFactor: 1 };
  storageContract('cassandra', async () => new CassandraStorage(cfg, createLogger({ test: 'storage-cassandra' })));

  after(async () => {
    const client = new cassandra.Client({ contactPoints, localDataCenter });
    try {
      await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    } finally {
      await client.shutdown();
    }
  });
});
