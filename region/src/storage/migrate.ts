/**
 * `npm run migrate`: creates the Cassandra keyspace if missing and applies pending schema
 * migrations, logging each step. Run once per deploy, before the region processes start.
 * Exit codes: 0 done, 1 migration failed, 2 configuration missing or invalid.
 */
import { ConfigError, loadConfig } from '../config.ts';
import { createLogger, errorFields } from '../log.ts';
import { CassandraStorage } from './storage-cassandra.ts';

const log = createLogger({ svc: 'migrate' });

async function main(): Promise<number> {
  let cfg;
  try {
    // The internal secret signs edge traffic; migrating never uses it, so it is not required here.
    cfg = loadConfig(process.env, { needSecret: false });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log.error('invalid configuration', { err: err.message });
    return 2;
  }
  if (!cfg.cassandra) {
    log.error('CASSANDRA_CONTACT_POINTS is not set: nothing to migrate (the embedded SQLite storage creates its tables at start)');
    return 2;
  }
  const { contactPoints, keyspace } = cfg.cassandra;
  log.info('migrating', { contactPoints, keyspace });
  const storage = new CassandraStorage(cfg.cassandra, log.child({ component: 'cassandra' }));
  try {
    await storage.init();
    log.info('migrations complete', { keyspace });
    return 0;
  } catch (err) {
    const reason = (err instanceof Error ? err.message : String(err)).split('\n')[0];
    log.error(`migration failed: ${reason}`, { contactPoints, keyspace, errName: err instanceof Error ? err.name : undefined });
    return 1;
  } finally {
    await storage.close().catch(() => {});
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log.error('migration failed', errorFields(err));
    process.exit(1);
  },
);
