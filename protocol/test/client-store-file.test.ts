import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MemoryStore, type ClientStore, type PendingSend } from '../src/client/index.ts';
import { FileStore, StoreCorruptError } from '../src/client/node.ts';

const root = await mkdtemp(join(tmpdir(), 'sb-file-store-'));
after(() => rm(root, { recursive: true, force: true }));
let n = 0;
const freshPath = () => join(root, `case-${++n}`, 'nested', 'state');

const send = (cmid: string, conv = 'c1'): PendingSend => ({ conv, cmid, body: `body of ${cmid}`, createdAt: 1000 });
const line = (rec: object) => JSON.stringify(rec) + '\n';

/** Opens, runs `body`, closes: what a process that then exits leaves on disk. */
async function session(path: string, body: (s: FileStore) => Promise<void>, opts = {}): Promise<void> {
  const s = new FileStore(path, opts);
  try {
    await body(s);
  } finally {
    await s.close();
  }
}
async function loadFresh(path: string) {
  const s = new FileStore(path);
  try {
    return await s.load();
  } finally {
    await s.close();
  }
}

async function assertCorrupt(path: string, file: string, lineNo: number) {
  const before = await readFile(file, 'utf8');
  const s = new FileStore(path);
  const check = (e: unknown) => {
    assert.ok(e instanceof StoreCorruptError, `expected StoreCorruptError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.equal(e.line, lineNo);
    assert.ok(e.message.startsWith(`${file}:${lineNo}: `), e.message);
    return true;
  };
  await assert.rejects(s.load(), check);
  // Every later call fails the same way, and nothing on disk was rewritten.
  await assert.rejects(s.putPending(send('later')), check);
  await s.close();
  assert.equal(await readFile(file, 'utf8'), before);
}

describe('FileStore on disk', () => {
  it('creates parent directories, a snapshot at path and a log beside it', async () => {
    const path = freshPath();
    await session(path, (s) => s.putPending(send('a')));
    assert.ok(existsSync(`${path}.log`));
    await session(path, async () => {}); // open folds the log into the snapshot
    assert.ok(existsSync(path));
    assert.equal(await readFile(`${path}.log`, 'utf8'), '');
    assert.deepEqual((await loadFresh(path)).outbox, [send('a')]);
  });

  it('ignores a torn final line (a crash mid-append) and drops it from disk', async () => {
    const path = freshPath();
    await session(path, async (s) => {
      await s.putPending(send('a'));
      await s.putPending(send('b'));
    });
    await appendFile(`${path}.log`, '{"n":3,"op":"put","conv":"c1","cmid":"torn","bo');
    assert.deepEqual((await loadFresh(path)).outbox, [send('a'), send('b')]);
    await session(path, (s) => s.putPending(send('c')));
    assert.deepEqual((await loadFresh(path)).outbox, [send('a'), send('b'), send('c')]);
    assert.ok(!(await readFile(path, 'utf8')).includes('torn'));
  });

  it('ignores a torn tail of zero bytes (size extended, data never written)', async () => {
    const path = freshPath();
    await session(path, (s) => s.setCursor('c1', 4));
    await appendFile(`${path}.log`, Buffer.alloc(64));
    assert.deepEqual((await loadFresh(path)).cursors, { c1: 4 });
  });

  it('refuses a corrupt middle line of the log with a typed error naming file and line', async () => {
    const path = freshPath();
    await session(path, async (s) => {
      for (const id of ['a', 'b', 'c']) await s.putPending(send(id));
    });
    const log = `${path}.log`;
    const lines = (await readFile(log, 'utf8')).split('\n');
    lines[1] = lines[1]!.slice(0, 10) + '#' + lines[1]!.slice(11);
    await writeFile(log, lines.join('\n'));
    await assertCorrupt(path, log, 2);
  });

  it('refuses a complete last line that is not a record (only an unterminated one is torn)', async () => {
    const path = freshPath();
    await session(path, (s) => s.putPending(send('a')));
    await appendFile(`${path}.log`, line({ n: 2, op: 'put', cmid: 'no-conv' }));
    await assertCorrupt(path, `${path}.log`, 2);
  });

  it('refuses record numbers that go backwards', async () => {
    const path = freshPath();
    await session(path, async (s) => {
      await s.putPending(send('a'));
      await s.putPending(send('b'));
    });
    await appendFile(`${path}.log`, line({ n: 1, op: 'remove', cmid: 'a' }));
    await assertCorrupt(path, `${path}.log`, 3);
  });

  it('refuses a damaged snapshot', async () => {
    const path = freshPath();
    await session(path, async (s) => {
      for (const id of ['a', 'b']) await s.putPending(send(id));
    });
    await session(path, async () => {});
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.replace('"cmid":"b"', '"cmid":7'));
    await assertCorrupt(path, path, 3);
    await writeFile(path, text.split('\n').slice(0, 2).join('\n') + '\n'); // a record missing
    await assertCorrupt(path, path, 2);
  });

  it('skips log records already in the snapshot (crash between snapshot swap and log truncation)', async () => {
    const path = freshPath();
    await session(path, async () => {});
    await writeFile(path, line({ v: 1, through: 3, records: 2 }) + line({ op: 'put', ...send('a') }) + line({ op: 'cursor', conv: 'c1', seq: 7 }));
    await writeFile(
      `${path}.log`,
      line({ n: 1, op: 'put', ...send('x') }) + line({ n: 2, op: 'remove', cmid: 'a' }) + line({ n: 3, op: 'cursor', conv: 'c1', seq: 7 }) + line({ n: 4, op: 'put', ...send('y') }),
    );
    assert.deepEqual(await loadFresh(path), { outbox: [send('a'), send('y')], cursors: { c1: 7 } });
  });

  it('ignores and removes a temp snapshot left by a crash before its rename', async () => {
    const path = freshPath();
    await session(path, (s) => s.putPending(send('a')));
    await writeFile(`${path}.tmp`, '{"v":1,"thro');
    assert.deepEqual((await loadFresh(path)).outbox, [send('a')]);
    assert.ok(!existsSync(`${path}.tmp`));
  });

  for (const compactAfter of [1000, 7]) {
    it(`persists every one of many concurrent writes (compactAfter ${compactAfter})`, async () => {
      const path = freshPath();
      const s = new FileStore(path, { compactAfter });
      const ids = Array.from({ length: 300 }, (_, i) => `m${i}`);
      await Promise.all(ids.flatMap((id, i) => [s.putPending(send(id)), s.setCursor(`c${i % 3}`, i), ...(i % 10 === 0 ? [s.removePending(id)] : [])]));
      // No close: what resolved must be on disk as if the process died here.
      const state = await loadFresh(path);
      await s.close();
      assert.deepEqual(state.outbox.map((p) => p.cmid), ids.filter((_, i) => i % 10 !== 0));
      assert.deepEqual(state.cursors, { c0: 297, c1: 298, c2: 299 });
    });
  }

  it('keeps everything through compactions (random writes against MemoryStore)', async () => {
    const path = freshPath();
    const model = new MemoryStore();
    let seed = 42;
    const rand = (k: number) => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) % k;
    let s = new FileStore(path, { compactAfter: 5 });
    for (let i = 0; i < 400; i++) {
      const step = async (st: ClientStore) => {
        const r = rand(10);
        if (r < 5) await st.putPending(send(`m${rand(40)}`, `c${rand(3)}`));
        else if (r < 8) await st.removePending(`m${rand(40)}`);
        else await st.setCursor(`c${rand(3)}`, rand(100));
      };
      const saved = seed;
      await step(s);
      seed = saved;
      await step(model);
      if (i % 97 === 96) {
        await s.close();
        s = new FileStore(path, { compactAfter: 5 });
      }
      assert.ok((await readFile(`${path}.log`, 'utf8')).split('\n').length <= 6, 'log compacted');
    }
    assert.deepEqual(await s.load(), await model.load());
    await s.close();
    assert.deepEqual(await loadFresh(path), await model.load());
  });

  it('close waits for pending writes, releases the file, and later calls reject', async () => {
    const path = freshPath();
    const fds = () => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);
    const before = fds();
    const s = new FileStore(path);
    const write = s.putPending(send('a'));
    await s.close();
    await write;
    assert.equal(fds(), before);
    await assert.rejects(s.putPending(send('b')), /closed/);
    await assert.rejects(s.load(), /closed/);
    assert.deepEqual((await loadFresh(path)).outbox, [send('a')]);
  });
});
