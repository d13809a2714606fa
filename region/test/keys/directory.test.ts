import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import cassandra from 'cassandra-driver';
import { createLogger } from '../../src/log.ts';
import { CassandraStorage } from '../../src/storage/storage-cassandra.ts';
import { SqliteStorage } from '../../src/storage/storage-sqlite.ts';
import { engineSuite, runId } from '../engines.ts';
import { keyDirectoryContract } from './directory.contract.ts';

/** The key directory of each regional storage: SQLite always, Cassandra when it is configured. */
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-keys-'));
keyDirectoryContract('sqlite', async () => new SqliteStorage(path.join(dir, 'region.sqlite')));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

engineSuite('key directory', 'cassandra', (points) => {
  const contactPoints = points.split(',').map((s) => s.trim()).filter(Boolean);
  const localDataCenter = process.env.TEST_CASSANDRA_LOCAL_DC || 'datacenter1';
  const keyspace = `sbtest_${runId()}`;
  const cfg = { contactPoints, localDataCenter, keyspace, consistency: 'LOCAL_QUORUM', replication: { [localDataCenter]: 1 } };
  keyDirectoryContract('cassandra', async () => new CassandraStorage(cfg, createLogger({ test: 'keys-cassandra' })));
  after(async () => {
    const client = new cassandra.Client({ contactPoints, localDataCenter });
    try {
      await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    } finally {
      await client.shutdown();
    }
  });
});
