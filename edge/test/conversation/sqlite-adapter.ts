import Database from 'better-sqlite3';
import type { SqlLike } from '../../src/conversation/sequencer.ts';

/** A Durable Object's SqlStorage semantics over an in-memory better-sqlite3 database. */
export function memorySql(): { sql: SqlLike; transaction: (fn: () => void) => void; db: Database.Database } {
  const db = new Database(':memory:');
  const sql: SqlLike = {
    exec(query, ...bindings) {
      const stmt = db.prepare(query);
      const rows = stmt.reader ? (stmt.all(...bindings) as unknown[]) : (stmt.run(...bindings), []);
      return { toArray: () => rows };
    },
  };
  return { sql, transaction: (fn) => db.transaction(fn)(), db };
}
