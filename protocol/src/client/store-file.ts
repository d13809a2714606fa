import { mkdir, open, rename, rm, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { ClientStore, PendingSend, StoredState } from './store.ts';

/**
 * A file the store cannot read back without guessing: which file, which line (1-based) and why.
 * The store refuses to open rather than drop what it cannot read; nothing on disk is changed.
 */
export class StoreCorruptError extends Error {
  constructor(readonly file: string, readonly line: number, readonly reason: string) {
    super(`${file}:${line}: ${reason}`);
    this.name = 'StoreCorruptError';
  }
}

export interface FileStoreOptions {
  /** Log records after which the log is folded into the snapshot. Default 1000. */
  compactAfter?: number;
}

/** One line of the log (with `n`) or of the snapshot (without). */
type Rec =
  | { op: 'put'; conv: string; cmid: string; body: string; createdAt: number }
  | { op: 'remove'; cmid: string }
  | { op: 'cursor'; conv: string; seq: number };

const isStr = (v: unknown): v is string => typeof v === 'string';
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Why `v` is not a record, or null when it is one. */
function invalid(v: Record<string, unknown>): string | null {
  switch (v.op) {
    case 'put':
      return isStr(v.conv) && isStr(v.cmid) && isStr(v.body) && isNum(v.createdAt) ? null : 'put record needs conv, cmid, body, createdAt';
    case 'remove':
      return isStr(v.cmid) ? null : 'remove record needs cmid';
    case 'cursor':
      return isStr(v.conv) && isNum(v.seq) ? null : 'cursor record needs conv, seq';
    default:
      return `unknown op ${JSON.stringify(v.op)}`;
  }
}

function parseLine(file: string, line: number, text: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new StoreCorruptError(file, line, 'not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new StoreCorruptError(file, line, 'not a JSON object');
  return v as Record<string, unknown>;
}

/** fsync of a directory makes a rename or a new file in it durable; Windows cannot open one. */
async function syncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/**
 * The Node store: a snapshot file at `path` and a write-ahead log at `${path}.log`, both JSON
 * lines. Each write appends one numbered record and fsyncs before it resolves; past
 * `compactAfter` records (and at every open) the state is written to a new snapshot that
 * replaces the old one atomically, and the log is emptied. The snapshot names the last record it
 * contains, so a log left behind by a crash during compaction is never applied twice.
 *
 * A crash mid-append leaves an unterminated last line: it was never acknowledged, so open
 * drops it. Any other damage fails open with a `StoreCorruptError`. After a failed write the
 * store stops (every later call rejects with that error): open a new FileStore to recover.
 * One FileStore per path at a time; writes are applied one after another in call order.
 */
export class FileStore implements ClientStore {
  readonly logPath: string;
  private readonly compactAfter: number;
  private readonly outbox = new Map<string, PendingSend>();
  private readonly cursors = new Map<string, number>();
  private log: FileHandle | null = null;
  /** Byte length of the log: where the next record goes. */
  private logBytes = 0;
  private logRecords = 0;
  /** Number of the last record written (snapshot or log). */
  private lastN = 0;
  private tail: Promise<unknown>;
  private failed: Error | null = null;
  private closed = false;

  constructor(readonly path: string, opts: FileStoreOptions = {}) {
    this.logPath = `${path}.log`;
    this.compactAfter = Math.max(1, opts.compactAfter ?? 1000);
    // Opening starts now; a failure is kept in `failed` and rejects the first call.
    this.tail = this.open().catch(() => {});
  }

  load(): Promise<StoredState> {
    return this.serial(async () => ({
      outbox: [...this.outbox.values()].map((p) => ({ ...p })),
      cursors: Object.fromEntries(this.cursors),
    }));
  }

  putPending(p: PendingSend): Promise<void> {
    const rec: Rec = { op: 'put', conv: p.conv, cmid: p.cmid, body: p.body, createdAt: p.createdAt };
    return this.serial(async () => {
      if (!this.outbox.has(p.cmid)) await this.write(rec);
    });
  }

  removePending(cmid: string): Promise<void> {
    return this.serial(async () => {
      if (this.outbox.has(cmid)) await this.write({ op: 'remove', cmid });
    });
  }

  setCursor(conv: string, seq: number): Promise<void> {
    return this.serial(async () => {
      if (seq > (this.cursors.get(conv) ?? 0)) await this.write({ op: 'cursor', conv, seq });
    });
  }

  /** Waits for the writes already called, then releases the file. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return this.tail.then(() => undefined);
    this.closed = true;
    const done = this.tail.then(async () => {
      await this.log?.close();
      this.log = null;
    });
    this.tail = done.catch(() => {});
    return done;
  }

  /** Runs `task` after every call made before it; a failed open or write fails every later call. */
  private serial<T>(task: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new Error(`FileStore ${this.path} is closed`));
    const run = this.tail.then(() => {
      if (this.failed) throw this.failed;
      return task();
    });
    this.tail = run.catch(() => {});
    return run;
  }

  private apply(rec: Rec): void {
    if (rec.op === 'put') {
      if (!this.outbox.has(rec.cmid)) this.outbox.set(rec.cmid, { conv: rec.conv, cmid: rec.cmid, body: rec.body, createdAt: rec.createdAt });
    } else if (rec.op === 'remove') this.outbox.delete(rec.cmid);
    else if (rec.seq > (this.cursors.get(rec.conv) ?? 0)) this.cursors.set(rec.conv, rec.seq);
  }

  /** Appends one record durably, then applies it; compacts when the log has grown long. */
  private async write(rec: Rec): Promise<void> {
    const log = this.log!;
    const n = this.lastN + 1;
    const buf = Buffer.from(JSON.stringify({ n, ...rec }) + '\n');
    try {
      for (let off = 0; off < buf.length; ) off += (await log.write(buf, off, buf.length - off, this.logBytes + off)).bytesWritten;
      await log.datasync();
    } catch (e) {
      // Unknown what reached the disk: stop here (a later append would follow a torn line).
      this.failed = e as Error;
      await log.truncate(this.logBytes).catch(() => {});
      throw e;
    }
    this.logBytes += buf.length;
    this.logRecords++;
    this.lastN = n;
    this.apply(rec);
    if (this.logRecords >= this.compactAfter) await this.compact();
  }

  /**
   * Writes the state to a new snapshot, swaps it in atomically, then empties the log. Runs after
   * a record is durable, so it never fails that write: a snapshot that could not be written
   * leaves the log whole and is tried again after the next write; a log that could not be
   * emptied stops the store, like a failed append.
   */
  private async compact(): Promise<void> {
    try {
      await this.writeSnapshot();
    } catch {
      return;
    }
    try {
      await this.log!.truncate(0);
      this.logBytes = 0;
      this.logRecords = 0;
      await this.log!.datasync();
    } catch (e) {
      this.failed = e as Error;
    }
  }

  private async writeSnapshot(): Promise<void> {
    const recs: Rec[] = [
      ...[...this.outbox.values()].map((p): Rec => ({ op: 'put', ...p })),
      ...[...this.cursors].map(([conv, seq]): Rec => ({ op: 'cursor', conv, seq })),
    ];
    const header = { v: 1, through: this.lastN, records: recs.length };
    const text = [header, ...recs].map((r) => JSON.stringify(r) + '\n').join('');
    const tmp = `${this.path}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(text);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.path);
    await syncDir(dirname(this.path));
  }

  /** Reads snapshot then log, folds them into a fresh snapshot, and opens an empty log. */
  private async open(): Promise<void> {
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await rm(`${this.path}.tmp`, { force: true });
      const snapshot = await readIfExists(this.path);
      if (snapshot !== null) this.readSnapshot(snapshot);
      const log = await readIfExists(this.logPath);
      if (log) {
        this.readLog(log);
        await this.writeSnapshot();
      }
      this.log = await open(this.logPath, 'w');
      await this.log.datasync();
      await syncDir(dirname(this.logPath));
    } catch (e) {
      this.failed = e as Error;
      throw e;
    }
  }

  private readSnapshot(text: string): void {
    const file = this.path;
    if (!text.endsWith('\n')) throw new StoreCorruptError(file, text.split('\n').length, 'snapshot ends mid-line');
    const lines = text.slice(0, -1).split('\n');
    const header = parseLine(file, 1, lines[0]!);
    if (header.v !== 1 || !isNum(header.through) || !isNum(header.records)) throw new StoreCorruptError(file, 1, 'not a snapshot header {v: 1, through, records}');
    if (lines.length - 1 !== header.records) throw new StoreCorruptError(file, lines.length, `snapshot has ${lines.length - 1} records, header says ${header.records}`);
    for (let i = 1; i < lines.length; i++) {
      const v = parseLine(file, i + 1, lines[i]!);
      const why = invalid(v) ?? (v.op === 'remove' ? 'remove record in a snapshot' : null);
      if (why) throw new StoreCorruptError(file, i + 1, why);
      this.apply(v as Rec);
    }
    this.lastN = header.through;
  }

  private readLog(text: string): void {
    const file = this.logPath;
    // Whatever follows the last newline is an append cut short by a crash: never acknowledged.
    const lines = text.split('\n').slice(0, -1);
    const through = this.lastN;
    for (let i = 0; i < lines.length; i++) {
      const v = parseLine(file, i + 1, lines[i]!);
      const why = (isNum(v.n) ? null : 'record has no number n') ?? invalid(v);
      if (why) throw new StoreCorruptError(file, i + 1, why);
      const n = v.n as number;
      // Already in the snapshot: a crash came between the snapshot's rename and the log's truncation.
      if (n <= through && this.lastN === through) continue;
      if (n <= this.lastN) throw new StoreCorruptError(file, i + 1, `record ${n} after record ${this.lastN}`);
      this.lastN = n;
      this.apply(v as Rec);
    }
  }
}
