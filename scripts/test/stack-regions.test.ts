/**
 * The local stack's second region and Redis Cluster (`npm run stack:up -- --regions 2 --redis-cluster`),
 * as the test runner exports them: TEST_REGION2_* and TEST_REDIS_CLUSTER_NODES. Like the
 * real-engine contract suites: with CI=true a missing variable fails, else the suite is skipped
 * with the reason.
 *
 * - Cassandra: one cluster, two datacenters. A keyspace replicated {'datacenter1':1,'datacenter2':1}
 *   gets a row written at LOCAL_QUORUM through either datacenter, and the other datacenter reads
 *   it at LOCAL_ONE (cross-datacenter replication is asynchronous to the writer's ack, so the
 *   reader polls until it is there).
 * - Redis Cluster: every node says cluster_state:ok, the 16384 slots are covered by 3 masters,
 *   and a cluster client writes and reads keys that live on every master.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import cassandra from 'cassandra-driver';
import { Cluster, Redis } from 'ioredis';

const runId = `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;

/** `register(values)` when every variable is set; else a failing test in CI, a skipped one otherwise. */
function envSuite(title: string, variables: string[], register: (values: Record<string, string>) => void): void {
  const values = Object.fromEntries(variables.map((v) => [v, process.env[v]?.trim() ?? '']));
  const missing = variables.filter((v) => !values[v]);
  if (missing.length === 0) return register(values);
  describe(title, () => {
    if (process.env.CI === 'true') {
      it('is configured', () => {
        throw new Error(`CI requires ${title}: ${missing.join(', ')} not set`);
      });
    } else {
      it('is configured', { skip: `start it with npm run stack:up -- --regions 2 --redis-cluster (then npm test sets ${missing.join(', ')})` }, () => {});
    }
  });
}

/** Polls `read` until it returns a value (not undefined) or `attempts` run out (then throws the last error); no timing asserted. */
async function eventually<T>(read: () => Promise<T | undefined>, attempts = 150, everyMs = 200): Promise<T> {
  let last: unknown = 'never read a value';
  for (let i = 0; i < attempts; i++) {
    try {
      const v = await read();
      if (v !== undefined) return v;
      last = 'no row';
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`not replicated after ${attempts} reads: ${last instanceof Error ? last.message : String(last)}`);
}

envSuite(
  'stack region 2: Cassandra datacenter2',
  ['TEST_CASSANDRA_CONTACT_POINTS', 'TEST_CASSANDRA_LOCAL_DC', 'TEST_REGION2_CASSANDRA_CONTACT_POINTS', 'TEST_REGION2_CASSANDRA_LOCAL_DC'],
  (env) => {
    describe('stack region 2: Cassandra datacenter2', () => {
      const keyspace = `sb_xdc_${runId}`;
      const client = (points: string, dc: string) =>
        new cassandra.Client({ contactPoints: points.split(','), localDataCenter: dc, socketOptions: { readTimeout: 20_000 } });
      const dc1 = client(env.TEST_CASSANDRA_CONTACT_POINTS!, env.TEST_CASSANDRA_LOCAL_DC!);
      const dc2 = client(env.TEST_REGION2_CASSANDRA_CONTACT_POINTS!, env.TEST_REGION2_CASSANDRA_LOCAL_DC!);
      const { consistencies } = cassandra.types;

      before(async () => {
        await dc1.connect();
        await dc2.connect();
        await dc1.execute(`CREATE KEYSPACE ${keyspace} WITH replication = {'class': 'NetworkTopologyStrategy', 'datacenter1': 1, 'datacenter2': 1}`);
        await dc1.execute(`CREATE TABLE ${keyspace}.kv (k text PRIMARY KEY, v text)`);
      });

      after(async () => {
        await dc1.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`).catch(() => undefined);
        await dc1.shutdown();
        await dc2.shutdown();
      });

      it('the region 2 client talks to a datacenter2 node of the same cluster', async () => {
        const local = (await dc2.execute('SELECT cluster_name, data_center, rpc_address FROM system.local')).first();
        assert.equal(local.get('data_center'), env.TEST_REGION2_CASSANDRA_LOCAL_DC);
        assert.equal(local.get('rpc_address').toString(), env.TEST_REGION2_CASSANDRA_CONTACT_POINTS!.split(',')[0]!.split(':')[0]);
        const one = (await dc1.execute('SELECT cluster_name, data_center FROM system.local')).first();
        assert.equal(one.get('data_center'), env.TEST_CASSANDRA_LOCAL_DC);
        assert.equal(local.get('cluster_name'), one.get('cluster_name'));
        const dcs = new Set(dc1.getState().getConnectedHosts().map((h) => h.datacenter));
        assert.deepEqual([...dcs], [env.TEST_CASSANDRA_LOCAL_DC], 'the region 1 client keeps to its own datacenter');
        const peers = (await dc1.execute('SELECT data_center FROM system.peers_v2')).rows.map((r) => r.get('data_center'));
        assert.ok(peers.includes(env.TEST_REGION2_CASSANDRA_LOCAL_DC), `node 1 sees datacenter2 among its peers: ${peers.join(',')}`);
      });

      for (const [from, to, name] of [
        [dc1, dc2, 'datacenter1 → datacenter2'],
        [dc2, dc1, 'datacenter2 → datacenter1'],
      ] as const) {
        it(`a row written at LOCAL_QUORUM in ${name.split(' ')[0]} reads at LOCAL_ONE in ${name.split(' ').pop()}`, async () => {
          const k = `${name.split(' ')[0]}-${runId}`;
          await from.execute(`INSERT INTO ${keyspace}.kv (k, v) VALUES (?, ?)`, [k, `written in ${name}`], { prepare: true, consistency: consistencies.localQuorum });
          const read = await eventually(async () => {
            const row = (await to.execute(`SELECT v FROM ${keyspace}.kv WHERE k = ?`, [k], { prepare: true, consistency: consistencies.localOne })).first();
            return row ? (row.get('v') as string) : undefined;
          });
          assert.equal(read, `written in ${name}`);
        });
      }
    });
  },
);

envSuite('stack Redis Cluster', ['TEST_REDIS_CLUSTER_NODES'], (env) => {
  describe('stack Redis Cluster', () => {
    const nodes = env.TEST_REDIS_CLUSTER_NODES!.split(',').map((n) => {
      const [host, port] = n.trim().split(':');
      return { host: host!, port: Number(port) };
    });

    it('every node says cluster_state:ok; 16384 slots covered by 3 masters', async () => {
      for (const n of nodes) {
        const r = new Redis({ ...n, lazyConnect: true, maxRetriesPerRequest: 1 });
        try {
          await r.connect();
          const info = (await r.cluster('INFO')) as string;
          assert.match(info, /cluster_state:ok/, `${n.host}:${n.port}`);
          assert.match(info, /cluster_slots_assigned:16384/);
          assert.match(info, /cluster_size:3/);
          const slots = await r.cluster('SLOTS');
          const owners = new Set(slots.map((s) => `${s[2]![0]}:${s[2]![1]}`));
          const covered = slots.reduce((sum, s) => sum + (s[1] - s[0] + 1), 0);
          assert.equal(covered, 16384);
          assert.deepEqual([...owners].sort(), nodes.map((x) => `${x.host}:${x.port}`).sort());
        } finally {
          r.disconnect();
        }
      }
    });

    it('a cluster client writes and reads keys on every master', async () => {
      const cluster = new Cluster(nodes, { redisOptions: { maxRetriesPerRequest: 2 } });
      const keys = Array.from({ length: 30 }, (_, i) => `sb:stacktest:${runId}:${i}`);
      try {
        for (const k of keys) await cluster.set(k, k, 'EX', 300);
        for (const k of keys) assert.equal(await cluster.get(k), k);
        const masters = new Set<string>();
        for (const k of keys) {
          const slot = (await cluster.cluster('KEYSLOT', k)) as number;
          const owner = (await cluster.cluster('SLOTS')).find((s) => slot >= s[0] && slot <= s[1])!;
          masters.add(`${owner[2]![0]}:${owner[2]![1]}`);
        }
        assert.equal(masters.size, 3, 'the keys spread over the 3 masters');
      } finally {
        for (const k of keys) await cluster.del(k).catch(() => undefined);
        cluster.disconnect();
      }
    });
  });
});
