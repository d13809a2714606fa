import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { createLogger } from '../../src/log.ts';
import { CassandraStorage } from '../../src/storage/storage-cassandra.ts';
import { SqliteStorage } from '../../src/storage/storage-sqlite.ts';
import { engineSuite, runId } from '../engines.ts';
import { consentStoreContract } from './consent-store.contract.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-consent-'));
consentStoreContract('sqlite', async () => new SqliteStorage(path.join(dir, 'region.sqlite')));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

engineSuite('consent store', 'cassandra', (points) => {
  const contactPoints = points.split(',').map((s) => s.trim()).filter(Boolean);
  const localDataCenter = process.env.TEST_CASSANDRA_LOCAL_DC || 'datacenter1';
  const cfg = { contactPoints, localDataCenter, keyspace: `sbtest_${runId()}`, consistency: 'LOCAL_QUORUM', replication: { [localDataCenter]: 1 } };
  consentStoreContract('cassandra', async () => new CassandraStorage(cfg, createLogger({ test: 'consent-cassandra' })));
});
