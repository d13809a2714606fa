import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import cassandra from 'cassandra-driver';
import { Kafka, logLevel } from 'kafkajs';
import { MlsGroup, TrustOnFirstUse, b64, certifyDevice, newIdentityKey, newKeyPackage, newSignatureKey, type DeviceKeyPackage } from '@switchboard/protocol/mls';
import { realEngineEnv, startSystem, type System } from './system.ts';
import { TestSocket, token } from './socket.ts';

/**
 * End-to-end encryption on the real engines, with the SDK's MLS layer scripted device by device:
 * - ciphertext only: canary strings (raw, base64, hex) sent through an encrypted direct and an
 *   encrypted group conversation appear nowhere on the servers (every Cassandra table of the run's
 *   keyspace, the edge's Durable Object storage, every Kafka topic of the run, every server log
 *   line), and neither does any private key the test's devices made;
 * - removed member: every message after Bob's removal, read straight from Cassandra, fails to
 *   decrypt with Bob's state from before and after the removal;
 * - added member: messages before Dave's join, read straight from Cassandra, fail to decrypt for
 *   Dave; those after it decrypt.
 */
const text = (s: string) => new TextEncoder().encode(s);
const engines = realEngineEnv('probe');

interface Device {
  user: string;
  device: string;
  kp: DeviceKeyPackage;
  secrets: Uint8Array[];
}

if (!engines) {
  if (process.env.CI === 'true') it('end-to-end encryption (real engines)', () => assert.fail('CI requires the real engines'));
  else it('end-to-end encryption (real engines)', { skip: 'real engines not running: npm run stack:up, then npm test' }, () => {});
} else {
  describe('end-to-end encryption (real engines): the servers hold only ciphertext', { timeout: 300_000 }, () => {
    let sys: System;
    const logs: string[] = [];
    const sockets: TestSocket[] = [];
    const devices: Device[] = [];
    const CONTROL = 'control-plaintext-5a9e0c';
    const canaries = ['canary-7d1f2c-plain words', 'Y2FuYXJ5LWJhc2U2NC04OGUx', '63616e6172792d6865782d3934'];
    const http = async (user: string, device: string, method: string, p: string, body?: unknown) => {
      const res = await fetch(`${sys.edgeUrl}${p}`, { method, headers: { authorization: `Bearer ${await token(sys.edgeUrl, user, device)}` }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
      return { status: res.status, body: (await res.json()) as Record<string, any> };
    };
    const device = async (user: string, name: string, identity?: Awaited<ReturnType<typeof newIdentityKey>>): Promise<Device> => {
      const id = identity ?? (await newIdentityKey());
      const sig = await newSignatureKey();
      const kp = await newKeyPackage(await certifyDevice(id, user, name, sig.publicKey), sig);
      const d = { user, device: name, kp, secrets: [id.signKey, sig.signKey, kp.privatePackage.initPrivateKey, kp.privatePackage.hpkePrivateKey] };
      devices.push(d);
      return d;
    };
    const commitBody = (cmid: string, c: Awaited<ReturnType<MlsGroup['commit']>>) => ({ cmid, commit: b64.encode(c.commit), groupInfo: b64.encode(c.groupInfo), ...(c.welcome ? { welcome: b64.encode(c.welcome) } : {}) });
    const commit = async (d: Device, conv: string, cmid: string, c: Awaited<ReturnType<MlsGroup['commit']>>) => {
      const r = await http(d.user, d.device, 'POST', `/v1/conversations/${conv}/mls/commit`, commitBody(cmid, c));
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.seq as number;
    };
    const welcome = async (d: Device, conv: string) => {
      const r = await http(d.user, d.device, 'GET', `/v1/conversations/${conv}/mls`);
      assert.equal(r.status, 200);
      for (const w of r.body.welcomes as { welcome: string }[]) {
        try {
          return await MlsGroup.join(b64.decode(w.welcome), d.kp, new TrustOnFirstUse());
        } catch {}
      }
      throw new Error(`no Welcome for ${d.user}/${d.device}`);
    };
    const sendAll = async (s: TestSocket, conv: string, g: MlsGroup, plaintexts: string[], tag: string) => {
      const seqs: number[] = [];
      for (const [i, p] of plaintexts.entries()) {
        const r = await s.request({ t: 'send', conv, cmid: `${tag}-${i}`, body: b64.encode(await g.encrypt(text(p))) });
        assert.equal(r.t, 'sent', JSON.stringify(r));
        seqs.push(r.seq);
      }
      return seqs;
    };

    let cql: cassandra.Client;
    const keyspace = () => `${sys.regionEnv.NAMESPACE}_chat`.toLowerCase();
    /** The stored bodies of a conversation's messages, straight from Cassandra, once `upTo` has arrived. */
    const stored = async (conv: string, upTo: number): Promise<Map<number, string>> => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        const rows = (await cql.execute(`SELECT seq, content FROM ${keyspace()}.messages WHERE conversation_id = ? AND bucket = 0`, [conv], { prepare: true })).rows;
        const out = new Map(rows.map((r) => [Number(r.seq), String(r.content)]));
        if (out.has(upTo)) return out;
        if (Date.now() > deadline) throw new Error(`seq ${upTo} of ${conv} not in Cassandra after 30 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
    };
    /** The messages table keeps a message's body as its `content`. */
    const bodyOf = (content: string) => content;

    before(async () => {
      sys = await startSystem('real', { regionEnv: { LOG_LEVEL: 'debug' }, sink: (svc, line) => void logs.push(`[${svc}] ${line}`) });
      cql = new cassandra.Client({ contactPoints: engines.CASSANDRA_CONTACT_POINTS!.split(','), localDataCenter: process.env.TEST_CASSANDRA_LOCAL_DC || 'datacenter1' });
      await cql.connect();
    });
    after(async () => {
      await Promise.all(sockets.map((s) => s.close()));
      await cql?.shutdown();
      await sys?.stop();
    });

    let groupConv = '';
    let bobBefore: Uint8Array;
    let bobAfter: MlsGroup;
    let removedAt = 0;
    let daveJoinedAt = 0;
    let dave: MlsGroup;
    const afterRemoval: number[] = [];
    const beforeDave: number[] = [];
    const afterDave: number[] = [];

    it('a scripted session: an encrypted direct conversation and a group with a removal and an addition', async () => {
      const aliceId = await newIdentityKey();
      const [a1, a2, b1, c1, d1] = [await device('alice', 'a1', aliceId), await device('alice', 'a2', aliceId), await device('bob', 'b1'), await device('carol', 'c1'), await device('dave', 'd1')];
      const [sa1, sb1, sc1] = await Promise.all([a1, b1, c1].map(async (d) => TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, d.user, d.device))));
      sockets.push(sa1!, sb1!, sc1!);

      // A control: a plaintext conversation carries a known string, which the scan must find.
      const plain = await http('alice', 'a1', 'POST', '/v1/conversations', { members: ['bob', 'carol'], title: 'plain' });
      const sent = await sa1!.request({ t: 'send', conv: plain.body.id, cmid: 'control', body: CONTROL });
      assert.equal(sent.t, 'sent');
      await stored(plain.body.id as string, sent.seq as number);

      // Direct: alice (two devices) and bob.
      const direct = await http('alice', 'a1', 'POST', '/v1/conversations', { members: ['bob'], direct: true, e2e: true });
      assert.equal(direct.status, 201);
      const dconv = direct.body.id as string;
      const da1 = await MlsGroup.create(text(dconv), a1.kp, new TrustOnFirstUse());
      const dadd = await da1.commit({ add: [b1.kp.bytes, a2.kp.bytes] });
      await commit(a1, dconv, 'd-commit-1', dadd);
      da1.applyCommit(dadd);
      const [db1, da2] = [await welcome(b1, dconv), await welcome(a2, dconv)];
      const dseqs = await sendAll(sa1!, dconv, da1, canaries.map((c) => `direct: ${c}`), 'd');
      const dstored = await stored(dconv, dseqs.at(-1)!);
      for (const [i, seq] of dseqs.entries()) {
        for (const g of [db1, da2]) {
          const p = await g.process(b64.decode(bodyOf(dstored.get(seq)!)));
          assert.equal(p.kind === 'application' && new TextDecoder().decode(p.plaintext), `direct: ${canaries[i]}`);
        }
      }

      // Group: alice, bob, carol; bob is removed, then dave added.
      const group = await http('alice', 'a1', 'POST', '/v1/conversations', { members: ['bob', 'carol'], title: 'team', e2e: true });
      groupConv = group.body.id as string;
      // Each group takes fresh KeyPackages (a KeyPackage joins one group only).
      const ga = await MlsGroup.create(text(groupConv), (await device('alice', 'a1', aliceId)).kp, new TrustOnFirstUse());
      const bobDev = await device('bob', 'b1');
      const gadd = await ga.commit({ add: [bobDev.kp.bytes, c1.kp.bytes] });
      await commit(a1, groupConv, 'g-commit-1', gadd);
      ga.applyCommit(gadd);
      const gb = await welcome(bobDev, groupConv);
      const gc = await welcome(c1, groupConv);
      const s1 = await sendAll(sa1!, groupConv, ga, canaries.map((c) => `group: ${c}`), 'g1');
      const st1 = await stored(groupConv, s1.at(-1)!);
      for (const seq of s1) for (const g of [gb, gc]) assert.equal((await g.process(b64.decode(bodyOf(st1.get(seq)!)))).kind, 'application');

      bobBefore = gb.serialize();
      const removed = await http('alice', 'a1', 'DELETE', `/v1/conversations/${groupConv}/members/bob`);
      assert.equal(removed.status, 200);
      removedAt = removed.body.seq as number;
      const removal = await ga.commit({ remove: ga.leavesOf('bob') });
      const removalSeq = await commit(a1, groupConv, 'g-commit-2', removal);
      ga.applyCommit(removal);
      await gc.process(removal.commit);
      await gb.process(removal.commit);
      assert.equal(gb.active, false);
      bobAfter = gb;
      afterRemoval.push(removalSeq, ...(await sendAll(sa1!, groupConv, ga, ['after bob: ' + canaries[0], 'after bob 2'], 'g2')));
      beforeDave.push(...s1, ...afterRemoval);

      const added = await http('alice', 'a1', 'POST', `/v1/conversations/${groupConv}/members`, { users: ['dave'] });
      assert.equal(added.status, 200);
      const dadd2 = await ga.commit({ add: [d1.kp.bytes] });
      daveJoinedAt = await commit(a1, groupConv, 'g-commit-3', dadd2);
      ga.applyCommit(dadd2);
      await gc.process(dadd2.commit);
      dave = await welcome(d1, groupConv);
      afterDave.push(...(await sendAll(sa1!, groupConv, ga, ['welcome dave', 'with dave: ' + canaries[1]], 'g3')));
      afterRemoval.push(daveJoinedAt, ...afterDave);
      await stored(groupConv, afterDave.at(-1)!);
    });

    it('a removed member decrypts nothing after the removal, with their state from before or after it', async () => {
      const rows = await stored(groupConv, afterDave.at(-1)!);
      const before = MlsGroup.restore(bobBefore, new TrustOnFirstUse());
      let tried = 0;
      for (const seq of [...rows.keys()].filter((s) => s > removedAt)) {
        const bytes = b64.decode(bodyOf(rows.get(seq)!));
        for (const g of [before, bobAfter]) {
          tried++;
          const r = await g.process(bytes).then(
            (p) => (p.kind === 'application' ? 'decrypted' : p.kind),
            () => 'failed',
          );
          if (r === 'decrypted') assert.fail(`bob decrypted seq ${seq}`);
        }
      }
      assert.ok(tried >= 2 * afterRemoval.length - 2, `every later message tried (${tried})`);
    });

    it('an added member decrypts nothing from before the join and everything after it', async () => {
      const rows = await stored(groupConv, afterDave.at(-1)!);
      for (const seq of beforeDave) {
        const r = await dave.process(b64.decode(bodyOf(rows.get(seq)!))).then(
          (p) => p.kind,
          () => 'failed',
        );
        assert.notEqual(r, 'application', `dave decrypted seq ${seq}, from before his join`);
      }
      for (const seq of afterDave) {
        const p = await dave.process(b64.decode(bodyOf(rows.get(seq)!)));
        assert.equal(p.kind, 'application');
      }
    });

    it('no canary and no private key anywhere on the servers: Cassandra, Durable Object storage, Kafka, logs', async () => {
      const textNeedles: [string, string][] = [];
      const byteNeedles: [string, Buffer][] = [];
      for (const c of canaries) {
        const raw = Buffer.from(c, 'utf8');
        textNeedles.push([`canary ${c}`, c], [`canary ${c} (base64)`, raw.toString('base64')], [`canary ${c} (base64url)`, raw.toString('base64url')], [`canary ${c} (hex)`, raw.toString('hex')]);
        byteNeedles.push([`canary ${c}`, raw]);
      }
      for (const d of devices) {
        for (const [i, k] of d.secrets.entries()) {
          const raw = Buffer.from(k);
          const name = `private key ${i} of ${d.user}/${d.device}`;
          textNeedles.push([name, raw.toString('base64')], [`${name} (base64url)`, raw.toString('base64url')], [`${name} (hex)`, raw.toString('hex')]);
          byteNeedles.push([name, raw]);
        }
      }
      const found: string[] = [];
      const control = new Set<string>();
      const scanText = (where: string, hay: string) => {
        if (hay.includes(CONTROL)) control.add(where.split(' ')[0]!);
        const lower = hay.toLowerCase();
        for (const [name, n] of textNeedles) if (hay.includes(n) || (/^[0-9a-f]+$/.test(n) && lower.includes(n))) found.push(`${name} in ${where}`);
      };
      const scanBytes = (where: string, hay: Buffer) => {
        for (const [name, n] of byteNeedles) if (hay.indexOf(n) >= 0) found.push(`${name} in ${where}`);
        scanText(where, hay.toString('latin1'));
      };
      // Let the last messages drain everywhere.
      await new Promise((r) => setTimeout(r, 2000));

      // Cassandra: every table of the run's keyspace.
      const tables = (await cql.execute('SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?', [keyspace()])).rows.map((r) => String(r.table_name));
      assert.ok(tables.includes('messages'));
      let cells = 0;
      for (const t of tables) {
        const rows: cassandra.types.Row[] = [];
        await new Promise<void>((resolve, reject) =>
          cql.eachRow(`SELECT * FROM ${keyspace()}.${t}`, [], { prepare: false, autoPage: true, fetchSize: 500 }, (_n, row) => void rows.push(row), (err) => (err ? reject(err) : resolve())),
        );
        for (const row of rows) {
          for (const k of row.keys()) {
            const v = row.get(k);
            cells++;
            if (Buffer.isBuffer(v)) scanBytes(`cassandra ${t}.${k}`, v);
            else if (v !== null && v !== undefined) scanText(`cassandra ${t}.${k}`, typeof v === 'string' ? v : JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? String(x) : x)) ?? String(v));
          }
        }
      }
      // The edge's and the region's files (Durable Object SQLite databases, WAL, everything).
      let files = 0;
      const walk = (dir: string) => {
        for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
          const p = path.join(dir, e.name);
          if (e.isDirectory()) walk(p);
          else if (e.isFile()) files++, scanBytes(`file ${path.relative(sys.dir, p)}`, fs.readFileSync(p));
        }
      };
      walk(sys.dir);
      // Kafka: every topic of the run, from the beginning.
      const kafka = new Kafka({ clientId: 'mls-scan', brokers: engines.KAFKA_BROKERS!.split(','), logLevel: logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${sys.regionEnv.NAMESPACE}.`));
      const ends = new Map<string, Map<number, bigint>>();
      for (const t of topics) ends.set(t, new Map((await admin.fetchTopicOffsets(t)).map((o) => [o.partition, BigInt(o.high)])));
      await admin.disconnect();
      let records = 0;
      const wanted = [...ends.values()].reduce((n, m) => n + [...m.values()].filter((h) => h > 0n).length, 0);
      if (wanted > 0) {
        const consumer = kafka.consumer({ groupId: `mls-scan-${Date.now()}` });
        await consumer.connect();
        await consumer.subscribe({ topics, fromBeginning: true });
        const done = new Set<string>();
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`kafka scan: ${done.size}/${wanted} partitions read in 60 s`)), 60_000);
          void consumer.run({
            eachMessage: async ({ topic, partition, message }) => {
              records++;
              if (message.value) scanBytes(`kafka ${topic}`, message.value);
              if (BigInt(message.offset) + 1n >= (ends.get(topic)?.get(partition) ?? 0n)) done.add(`${topic}/${partition}`);
              if (done.size >= wanted) clearTimeout(timer), resolve();
            },
          });
        });
        await consumer.disconnect();
      }
      // Every log line the region and the edge wrote (the region at debug).
      for (const line of logs) scanText('logs', line);

      console.log(`# scanned ${cells} Cassandra cells in ${tables.length} tables, ${files} files, ${records} Kafka records in ${topics.length} topics, ${logs.length} log lines`);
      assert.ok(cells > 0 && files > 0 && records > 0 && logs.length > 0, 'every store was scanned');
      // The scan sees plaintext where it is stored: the control is found in each store.
      assert.deepEqual([...control].sort(), ['cassandra', 'file', 'kafka'], 'the plaintext control is found in Cassandra, the Durable Objects\' files and Kafka');
      assert.deepEqual(found, []);
    });
  });
}
