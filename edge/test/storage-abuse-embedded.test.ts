import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { newConvId } from '@switchboard/protocol';
import { startSystem, type System } from './system.ts';
import { TestSocket, createConversation, token } from './socket.ts';

/**
 * Storage abuse (issue 20): frames naming a conversation that does not exist create no Durable
 * Object storage; acks and reads of a conversation the device is not in cost nothing durable (no
 * ConversationDO write, no cursor at the region). Both read what is on disk: the edge's Durable
 * Object files (workerd's persist folder) and the region's embedded SQLite database.
 *
 *   node --import tsx --test edge/test/storage-abuse-embedded.test.ts
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every file under `dir` with its size, by path relative to `dir`. */
function files(dir: string): Map<string, number> {
  const out = new Map<string, number>();
  if (!fs.existsSync(dir)) return out;
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const abs = path.join(dir, f);
    if (fs.statSync(abs).isFile()) out.set(f, fs.statSync(abs).size);
  }
  return out;
}

/** The tables (and indexes, alarms) in an SQLite database, read without writing. */
function tablesIn(file: string): string[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT name FROM sqlite_master').all() as { name: string }[]).map((r) => r.name);
  } finally {
    db.close();
  }
}

describe('storage abuse (embedded engines)', { timeout: 300_000 }, () => {
  let sys: System;
  const sockets: TestSocket[] = [];
  /** The ConversationDOs' files (one SQLite database per object). */
  const conversationFiles = () => new Map([...files(path.join(sys.dir, 'edge')).entries()].filter(([f]) => /ConversationDO/.test(f)));
  const changed = (before: Map<string, number>, after: Map<string, number>) =>
    [...after.entries()].filter(([f, size]) => before.get(f) !== size).map(([f, size]) => `${f}: ${before.get(f) ?? 'new'} → ${size}`);

  before(async () => {
    sys = await startSystem('embedded', { edgeVars: { DRAIN_COALESCE_MS: '0' } });
  });
  after(async () => {
    await Promise.all(sockets.map((s) => s.close()));
    await sys?.stop();
  });

  it('frames and requests naming conversations that do not exist are refused and leave no object storage behind', async () => {
    // One real conversation, so the edge has written ConversationDO storage before.
    const tok = await token(sys.edgeUrl, 'sa-a', 'd');
    const real = (await createConversation(sys.edgeUrl, tok, ['sa-b'])).id;
    const s = await TestSocket.open(sys.edgeUrl, tok);
    sockets.push(s);
    assert.equal((await s.request({ t: 'send', conv: real, cmid: 'real-1', body: 'hi' })).t, 'sent');
    await sleep(1500); // its outbox drained
    const before = conversationFiles();
    assert.ok(before.size > 0, `the persist folder holds ConversationDO files: ${[...files(path.join(sys.dir, 'edge')).keys()].join(', ')}`);

    const ghosts = Array.from({ length: 5 }, () => newConvId());
    for (const conv of ghosts) {
      const answers = [
        await s.request({ t: 'send', conv, cmid: `g-${conv}`, body: 'into the void' }),
        await s.request({ t: 'sync', conv }),
        await s.request({ t: 'history', conv }),
        await s.request({ t: 'read', conv, seq: 10 }),
        await s.request({ t: 'typing', conv }),
      ];
      for (const a of answers) assert.deepEqual([a.t, a.code], ['error', 'not_found'], JSON.stringify(a));
      s.raw(JSON.stringify({ t: 'ack', conv, seq: 10 }));
      const h = { authorization: `Bearer ${tok}` };
      for (const [method, p, body] of [
        ['GET', `/v1/conversations/${conv}`, undefined],
        ['GET', `/v1/conversations/${conv}/mls`, undefined],
        ['POST', `/v1/conversations/${conv}/members`, JSON.stringify({ users: ['sa-c'] })],
        ['DELETE', `/v1/conversations/${conv}/members/sa-a`, undefined],
      ] as const) {
        const res = await fetch(`${sys.edgeUrl}${p}`, { method, headers: h, ...(body ? { body } : {}) });
        assert.equal(res.status, 404, `${method} ${p}`);
        assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'not_found');
      }
    }
    await s.close();
    await sleep(2000); // closed-socket cursor flush, delivered reports, any alarm
    // The local runtime opens an SQLite file for every object it instantiates (a bare 4 KiB
    // header: no table, no row; Cloudflare bills and keeps rows). What counts is what is in them.
    const now = conversationFiles();
    const grown = [...now.keys()].filter((f) => before.has(f) && before.get(f) !== now.get(f) && !/-shm$/.test(f));
    assert.deepEqual(grown, [], 'no existing conversation changed');
    const ghostFiles = [...now.keys()].filter((f) => !before.has(f) && f.endsWith('.sqlite'));
    assert.equal(ghostFiles.length, ghosts.length, 'one object was woken per conversation id named (and answered not_found)');
    const held = ghostFiles.map((f) => ({ f, tables: tablesIn(path.join(sys.dir, 'edge', f)) })).filter((x) => x.tables.length > 0);
    assert.deepEqual(held, [], 'their databases hold no table and no row');
  });

  it('acks and reads of a conversation the device is not in write nothing: no cursor at the region, no position at the conversation', async () => {
    const theirs = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'sb-owner', 'd'), ['sb-member'])).id;
    const owner = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'sb-owner', 'd'));
    sockets.push(owner);
    for (let i = 1; i <= 3; i++) assert.equal((await owner.request({ t: 'send', conv: theirs, cmid: `sb-${i}`, body: 'x' })).t, 'sent');
    await sleep(1500);
    const before = conversationFiles();

    const outsider = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'sb-outsider', 'd'));
    outsider.raw(JSON.stringify({ t: 'ack', conv: theirs, seq: 3 }));
    const read = await outsider.request({ t: 'read', conv: theirs, seq: 3 });
    assert.deepEqual([read.t, read.code], ['error', 'not_member'], JSON.stringify(read));
    assert.equal((await outsider.request({ t: 'ping' })).t, 'pong');
    await outsider.close(); // its cursors are written within a second of the close
    await sleep(2500);

    const regionDbs = [...files(path.join(sys.dir, 'region')).keys()].filter((f) => /\.(db|sqlite)$/.test(f));
    assert.ok(regionDbs.length > 0, 'the region keeps an SQLite database');
    for (const f of regionDbs) {
      const db = new Database(path.join(sys.dir, 'region', f), { readonly: true, fileMustExist: true });
      try {
        const hasTable = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'device_cursors'").get();
        if (!hasTable) continue;
        assert.deepEqual(db.prepare('SELECT * FROM device_cursors WHERE user = ?').all('sb-outsider'), [], 'no cursor of the outsider at the region');
        // The member's own acks (the owner's SDK-less socket acked nothing, so none) are not what this checks.
      } finally {
        db.close();
      }
    }
    assert.deepEqual(changed(before, conversationFiles()).filter((f) => !/-shm:/.test(f)), [], "the conversation's storage is unchanged");
  });

  it('an ack of a conversation the device never received or used here is answered not_member', async () => {
    const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'sd-owner', 'd'), ['sd-member'])).id;
    const outsider = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'sd-outsider', 'd'));
    sockets.push(outsider);
    for (const c of [conv, newConvId()]) {
      const ack = await outsider.request({ t: 'ack', conv: c, seq: 3 });
      assert.deepEqual([ack.t, ack.code], ['error', 'not_member'], JSON.stringify(ack));
    }
  });

  it("a member's ack is still written (the check is not a blanket refusal)", async () => {
    const conv = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, 'sc-a', 'd'), ['sc-b'])).id;
    const a = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'sc-a', 'd'));
    const b = await TestSocket.open(sys.edgeUrl, await token(sys.edgeUrl, 'sc-b', 'd')); // acks each push
    sockets.push(a);
    assert.equal((await a.request({ t: 'send', conv, cmid: 'sc-1', body: 'x' })).t, 'sent');
    await b.waitSeqs(conv, 1);
    await sleep(200);
    await b.close();
    await sleep(2500);
    const regionDbs = [...files(path.join(sys.dir, 'region')).keys()].filter((f) => /\.(db|sqlite)$/.test(f));
    let rows: unknown[] = [];
    for (const f of regionDbs) {
      const db = new Database(path.join(sys.dir, 'region', f), { readonly: true, fileMustExist: true });
      try {
        if (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'device_cursors'").get()) rows = rows.concat(db.prepare('SELECT user, device, conv, seq FROM device_cursors WHERE user = ?').all('sc-b'));
      } finally {
        db.close();
      }
    }
    assert.deepEqual(rows, [{ user: 'sc-b', device: 'd', conv, seq: 1 }]);
  });
});
