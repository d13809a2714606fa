/**
 * `npm run cql -- "SELECT …"`: one CQL statement against the local Cassandra (there is no cqlsh
 * in the Maven artifacts). Prints the rows as JSON lines. CASSANDRA_CONTACT_POINTS, CASSANDRA_LOCAL_DC
 * and CASSANDRA_KEYSPACE override the defaults of `npm run stack:up` and `npm start -- --real`.
 *
 *   npm run cql -- "SELECT conversation_id, seq, sender, content FROM sb_chat.messages LIMIT 10"
 */
import cassandra from 'cassandra-driver';

const query = process.argv.slice(2).join(' ').trim();
if (!query) {
  console.error('usage: npm run cql -- "<CQL statement>"');
  process.exit(2);
}
const client = new cassandra.Client({
  contactPoints: (process.env.CASSANDRA_CONTACT_POINTS ?? '127.0.0.1:9042').split(','),
  localDataCenter: process.env.CASSANDRA_LOCAL_DC ?? 'datacenter1',
  keyspace: process.env.CASSANDRA_KEYSPACE || undefined,
});
try {
  const rs = await client.execute(query, [], { prepare: false, fetchSize: 1000 });
  for (const row of rs.rows ?? []) {
    const out: Record<string, unknown> = {};
    for (const k of row.keys()) {
      const v = row.get(k);
      out[k] = v !== null && typeof v === 'object' && 'toString' in v && !(v instanceof Date) && !Array.isArray(v) ? String(v) : v;
    }
    console.log(JSON.stringify(out));
  }
  console.error(`(${rs.rows?.length ?? 0} rows)`);
} catch (err) {
  console.error(`cql: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await client.shutdown();
}
