import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import cassandra from 'cassandra-driver';
import type { DeviceCursor, Msg } from '@switchboard/protocol';
import { createLogger } from '../../src/log.ts';
import { MESSAGES_PER_BUCKET } from '../../src/storage/migrations-cassandra.ts';
import { BATCH_BYTES, CassandraStorage, cursorBytes, cursorChunks, partitionChunks, rowBytes } from '../../src/storage/storage-cassandra.ts';
import { SqliteStorage } from '../../src/storage/storage-sqlite.ts';
import { engineSuite, runId } from '../engines.ts';
import { storageContract } from './storage.contract.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-storage-'));
storageContract('sqlite', async () => new SqliteStorage(path.join(dir, 'region.sqlite')));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const m = (conv: string, seq: number, bodyBytes: number): Msg => ({ t: 'msg', conv, seq, cmid: `cm-${seq}`, from: 'ann', dev: 'phone', ts: 1_764_000_000_000 + seq, body: 'x'.repeat(bodyBytes) });

describe('Cassandra message batches (partitionChunks)', () => {
  const B = MESSAGES_PER_BUCKET;
  it('one partition per chunk, in order, each chunk within BATCH_BYTES unless a single message', () => {
    const sizes = [10, 900, 3_000, 20, 5_000, 1_500, 2_600, 100, 0, 4_000];
    const msgs = [...Array.from({ length: 60 }, (_, i) => m('a', B - 30 + i, sizes[i % sizes.length]!)), m('b', 1, 10), m('b', 2, 10)];
    const chunks = partitionChunks(msgs);
    assert.deepEqual(chunks.flat().map((x) => `${x.conv}/${x.seq}`).sort(), msgs.map((x) => `${x.conv}/${x.seq}`).sort(), 'every message once');
    for (const c of chunks) {
      assert.ok(c.every((x) => x.conv === c[0]!.conv && Math.floor(x.seq / B) === Math.floor(c[0]!.seq / B)), 'one partition');
      assert.deepEqual(c.map((x) => x.seq), [...c.map((x) => x.seq)].sort((p, q) => p - q), 'in seq order');
      const bytes = c.reduce((n, x) => n + rowBytes(x), 0);
      if (c.length > 1) assert.ok(bytes <= BATCH_BYTES, `a batch of ${c.length} is ${bytes} bytes`);
    }
    assert.ok(chunks.some((c) => c.length === 1 && rowBytes(c[0]!) > BATCH_BYTES), 'a large message goes alone');
    assert.ok(chunks.some((c) => c.length > 1), 'small neighbours share a batch');
  });

  it('small messages go as few batches as their partitions allow, and multi-byte text counts in bytes', () => {
    assert.equal(partitionChunks(Array.from({ length: 20 }, (_, i) => m('a', i + 1, 20))).length, 1);
    const across = partitionChunks(Array.from({ length: 10 }, (_, i) => m('a', B - 5 + i, 20)));
    assert.deepEqual(across.map((c) => c.map((x) => x.seq)), [[B - 5, B - 4, B - 3, B - 2, B - 1], [B, B + 1, B + 2, B + 3, B + 4]], 'cut at the bucket boundary');
    const wide = Array.from({ length: 10 }, (_, i) => ({ ...m('a', i + 1, 0), body: 'ж'.repeat(700) })); // 1,400 bytes each
    const chunks = partitionChunks(wide);
    assert.ok(chunks.length >= 4, `${chunks.length} chunks`);
    for (const c of chunks) assert.ok(c.reduce((n, x) => n + rowBytes(x), 0) <= BATCH_BYTES);
  });
});

describe('Cassandra cursor batches (cursorChunks)', () => {
  it('one partition (user, device) per chunk, the highest cursor of each conversation once, each chunk within BATCH_BYTES', () => {
    const cursors: DeviceCursor[] = [];
    for (let i = 0; i < 400; i++) cursors.push({ user: `user-${i % 3}`, device: i % 2 ? 'phone' : 'laptop', conv: `conv-${'x'.repeat(40)}-${i % 150}`, seq: i });
    cursors.push({ user: 'user-0', device: 'laptop', conv: `conv-${'x'.repeat(40)}-0`, seq: 1 }); // lower than one before it
    const chunks = cursorChunks(cursors);
    for (const c of chunks) {
      assert.equal(new Set(c.map((x) => `${x.user}/${x.device}`)).size, 1, 'one partition');
      assert.ok(c.reduce((n, x) => n + cursorBytes(x), 0) <= BATCH_BYTES);
    }
    const flat = chunks.flat();
    const keys = flat.map((x) => `${x.user}/${x.device}/${x.conv}`);
    assert.equal(new Set(keys).size, keys.length, 'each conversation of a device once');
    const highest = new Map<string, number>();
    for (const x of cursors) highest.set(`${x.user}/${x.device}/${x.conv}`, Math.max(highest.get(`${x.user}/${x.device}/${x.conv}`) ?? 0, x.seq));
    assert.deepEqual(new Map(flat.map((x) => [`${x.user}/${x.device}/${x.conv}`, x.seq])), highest);
    assert.ok(chunks.some((c) => c.length > 10), 'small cursors share a batch');
  });
});

engineSuite('storage', 'cassandra', (points) => {
  const contactPoints = points.split(',').map((s) => s.trim()).filter(Boolean);
  const localDataCenter = process.env.TEST_CASSANDRA_LOCAL_DC || 'datacenter1';
  const keyspace = `sbtest_${runId()}`;
  const cfg = { contactPoints, localDataCenter, keyspace, consistency: 'LOCAL_QUORUM', replication: { [localDataCenter]: 1 } };
  storageContract('cassandra', async () => new CassandraStorage(cfg, createLogger({ test: 'storage-cassandra' })));

  describe('storage: cassandra message batches', () => {
    it('appends a partition\'s messages as single-partition batches, with no warning from Cassandra', async () => {
      const storage = new CassandraStorage(cfg, createLogger({ test: 'storage-cassandra-batches' }));
      await storage.init();
      const client = (storage as unknown as { client: cassandra.Client }).client;
      const warnings: string[] = [];
      client.on('log', (level: string, _cls: string, message: string) => {
        if (level === 'warning' && message.startsWith('Received warning')) warnings.push(message);
      });
      const batches: unknown[][][] = [];
      const batch = client.batch.bind(client);
      client.batch = ((queries: { query: string; params: unknown[] }[], options: cassandra.QueryOptions) => {
        batches.push(queries.map((q) => q.params));
        return batch(queries, options);
      }) as typeof client.batch;
      try {
        const conv = `cb${runId()}`;
        const sizes = [10, 900, 3_000, 20, 5_000, 1_500, 2_600, 100, 12_000, 40, 60, 80];
        const msgs = Array.from({ length: 120 }, (_, i) => m(conv, MESSAGES_PER_BUCKET - 60 + i, sizes[i % sizes.length]!));
        const small = Array.from({ length: 200 }, (_, i) => m(conv, 2 * MESSAGES_PER_BUCKET + i, 30));
        await storage.appendMessages([...msgs, ...small]);
        assert.deepEqual(warnings, []);
        assert.ok(batches.length >= 3, `${batches.length} batches`);
        for (const b of batches) assert.equal(new Set(b.map((params) => `${params[0]}/${params[1]}`)).size, 1, 'each batch is one partition');
        const expected = partitionChunks([...msgs, ...small]).filter((c) => c.length > 1);
        assert.deepEqual(
          batches.map((b) => b.map((params) => String(params[2]))).sort(),
          expected.map((c) => c.map((x) => String(x.seq))).sort(),
          'every multi-message chunk went as one batch',
        );
        assert.ok(expected.flat().length >= 250, 'most messages went in batches');
        assert.deepEqual((await storage.readAfter(conv, 0, 1_000)).map((x) => x.seq), [...msgs, ...small].map((x) => x.seq));
      } finally {
        await storage.close();
      }
    });
  });

  describe('storage: cassandra device cursor batches', () => {
    it("writes a device's cursors as single-partition unlogged batches at timestamp = seq, with no warning", async () => {
      const storage = new CassandraStorage(cfg, createLogger({ test: 'storage-cassandra-cursors' }));
      await storage.init();
      const client = (storage as unknown as { client: cassandra.Client }).client;
      const warnings: string[] = [];
      client.on('log', (level: string, _cls: string, message: string) => {
        if (level === 'warning' && message.startsWith('Received warning')) warnings.push(message);
      });
      const batches: { params: unknown[][]; logged: unknown }[] = [];
      const batch = client.batch.bind(client);
      client.batch = ((queries: { query: string; params: unknown[] }[], options: cassandra.QueryOptions & { logged?: boolean }) => {
        batches.push({ params: queries.map((q) => q.params), logged: options.logged });
        return batch(queries, options);
      }) as typeof client.batch;
      try {
        const user = `cu${runId()}`;
        const convs = Array.from({ length: 250 }, (_, i) => `cc${String(i).padStart(4, '0')}`);
        await storage.setDeviceCursors([
          ...convs.map((conv, i) => ({ user, device: 'phone', conv, seq: i + 1 })),
          ...convs.slice(0, 40).map((conv) => ({ user, device: 'laptop', conv, seq: 5 })),
        ]);
        assert.deepEqual(warnings, []);
        assert.ok(batches.length >= 3, `${batches.length} batches`);
        for (const b of batches) {
          assert.equal(b.logged, false);
          assert.equal(new Set(b.params.map((p) => `${p[2]}/${p[3]}`)).size, 1, 'each batch is one partition');
          for (const p of b.params) assert.equal(String(p[0]), String(p[1]), 'written at timestamp = seq');
        }
        assert.equal(batches.reduce((n, b) => n + b.params.length, 0), 290, 'every cursor went in a batch');
        assert.equal((await storage.deviceCursors(user, 'phone', convs)).get('cc0249'), 250);
        assert.equal((await storage.deviceCursors(user, 'laptop', convs)).size, 40);
      } finally {
        await storage.close();
      }
    });
  });

  after(async () => {
    const client = new cassandra.Client({ contactPoints, localDataCenter });
    try {
      await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    } finally {
      await client.shutdown();
    }
  });
});
