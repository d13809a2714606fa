import type { Msg } from '@switchboard/protocol';
import type { SqlLike } from './sequencer.ts';

export interface DeliveryOptions {
  /** Unacked messages a device may have outstanding; past this it is `lagging`. */
  window: number;
  /** First retransmit after this many ms; doubles per attempt. */
  retransmitMs: number;
  /** Cap of the retransmit interval. */
  maxRetransmitMs: number;
  /** Attempts (the first send included) before a device is given up on as `stalled`. */
  maxAttempts: number;
}

export const DEFAULT_DELIVERY: DeliveryOptions = { window: 1000, retransmitMs: 3000, maxRetransmitMs: 30_000, maxAttempts: 6 };

export interface Inflight {
  device: string;
  conv: string;
  seq: number;
  msg: Msg;
  attempts: number;
}

/**
 * Per-device delivery state of one user, in the SessionDO's SQLite. Contract:
 * - every message pushed to a device stays `inflight` until that device acks a seq at or above
 *   it in its conversation (acks are cumulative), and is due for retransmit meanwhile, with
 *   doubling intervals;
 * - a device's window of unacked messages is bounded: `track` refuses past it (`lagging`), and
 *   a device that does not ack after `maxAttempts` sends is `stalled`; the caller then closes
 *   that socket and the device resumes by sync, which is always complete;
 * - the delivered cursor per (device, conversation) only moves forward and is durable.
 */
export class DeliveryTracker {
  constructor(
    private readonly sql: SqlLike,
    private readonly opts: DeliveryOptions = DEFAULT_DELIVERY,
  ) {
    sql.exec(`CREATE TABLE IF NOT EXISTS cursors (
      device TEXT NOT NULL, conv TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (device, conv))`);
    sql.exec(`CREATE TABLE IF NOT EXISTS inflight (
      device TEXT NOT NULL, conv TEXT NOT NULL, seq INTEGER NOT NULL, msg TEXT NOT NULL,
      due INTEGER NOT NULL, attempts INTEGER NOT NULL, PRIMARY KEY (device, conv, seq))`);
    sql.exec('CREATE INDEX IF NOT EXISTS inflight_due ON inflight (due)');
  }

  /**
   * Records a push of `msg` to `device`. `sent`: push it now; `acked`: the device already has
   * it (skip); `inflight`: it was pushed and awaits its ack (skip: the retransmit timer owns it,
   * e.g. when the live path and the region's fan-out both deliver it); `lagging`: its window is
   * full (close it; it resumes by sync).
   */
  track(device: string, msg: Msg, now: number): 'sent' | 'acked' | 'inflight' | 'lagging' {
    if (msg.seq <= this.cursor(device, msg.conv)) return 'acked';
    if (this.one('SELECT 1 AS x FROM inflight WHERE device = ? AND conv = ? AND seq = ?', device, msg.conv, msg.seq)) return 'inflight';
    const open = this.one<{ n: number }>('SELECT COUNT(*) AS n FROM inflight WHERE device = ?', device)?.n ?? 0;
    if (open >= this.opts.window) return 'lagging';
    this.sql.exec(
      'INSERT OR IGNORE INTO inflight (device, conv, seq, msg, due, attempts) VALUES (?, ?, ?, ?, ?, 1)',
      device,
      msg.conv,
      msg.seq,
      JSON.stringify(msg),
      now + this.opts.retransmitMs,
    );
    return 'sent';
  }

  /** A cumulative ack: the device has every message of `conv` up to `seq`. */
  ack(device: string, conv: string, seq: number): void {
    this.sql.exec(
      `INSERT INTO cursors (device, conv, seq) VALUES (?, ?, ?)
       ON CONFLICT(device, conv) DO UPDATE SET seq = MAX(seq, excluded.seq)`,
      device,
      conv,
      seq,
    );
    this.sql.exec('DELETE FROM inflight WHERE device = ? AND conv = ? AND seq <= ?', device, conv, seq);
  }

  cursor(device: string, conv: string): number {
    return this.one<{ seq: number }>('SELECT seq FROM cursors WHERE device = ? AND conv = ?', device, conv)?.seq ?? 0;
  }

  /** Cursors of `device` for the given conversations (absent = 0). */
  cursors(device: string, convs: string[]): Map<string, number> {
    const out = new Map<string, number>();
    for (let i = 0; i < convs.length; i += 100) {
      const chunk = convs.slice(i, i + 100);
      const rows = this.all<{ conv: string; seq: number }>(
        `SELECT conv, seq FROM cursors WHERE device = ? AND conv IN (${chunk.map(() => '?').join(',')})`,
        device,
        ...chunk,
      );
      for (const r of rows) out.set(r.conv, r.seq);
    }
    return out;
  }

  /**
   * Messages due for retransmit at `now`, oldest seq first per conversation, rescheduled with
   * doubled intervals; and the devices that exhausted their attempts (their rows are dropped).
   */
  due(now: number): { resend: Inflight[]; stalled: string[] } {
    const rows = this.all<{ device: string; conv: string; seq: number; msg: string; attempts: number }>(
      'SELECT device, conv, seq, msg, attempts FROM inflight WHERE due <= ? ORDER BY device, conv, seq',
      now,
    );
    const stalled = new Set<string>();
    const resend: Inflight[] = [];
    for (const r of rows) {
      if (stalled.has(r.device)) continue;
      if (r.attempts >= this.opts.maxAttempts) {
        stalled.add(r.device);
        this.forget(r.device);
        continue;
      }
      const interval = Math.min(this.opts.maxRetransmitMs, this.opts.retransmitMs * 2 ** r.attempts);
      this.sql.exec('UPDATE inflight SET attempts = attempts + 1, due = ? WHERE device = ? AND conv = ? AND seq = ?', now + interval, r.device, r.conv, r.seq);
      resend.push({ device: r.device, conv: r.conv, seq: r.seq, msg: JSON.parse(r.msg) as Msg, attempts: r.attempts + 1 });
    }
    return { resend, stalled: [...stalled] };
  }

  /** When the next retransmit is due, or null when nothing is in flight. */
  nextDue(): number | null {
    return this.one<{ d: number | null }>('SELECT MIN(due) AS d FROM inflight')?.d ?? null;
  }

  /** Drops a device's in-flight messages (its socket closed: it resumes by sync). Cursors stay. */
  forget(device: string): void {
    this.sql.exec('DELETE FROM inflight WHERE device = ?', device);
  }

  inflightCount(device: string): number {
    return this.one<{ n: number }>('SELECT COUNT(*) AS n FROM inflight WHERE device = ?', device)?.n ?? 0;
  }

  private all<T>(query: string, ...bindings: unknown[]): T[] {
    return this.sql.exec(query, ...bindings).toArray() as T[];
  }

  private one<T>(query: string, ...bindings: unknown[]): T | undefined {
    return this.all<T>(query, ...bindings)[0];
  }
}
