/**
 * Pieces of the fault-injection suite (faults.test.ts): devices on the client SDK whose sockets
 * can be dropped, the record of what was sent, the per-device and Cassandra checks, and the
 * Kafka restart through the local engine stack (scripts/stack).
 */
import cassandra from 'cassandra-driver';
import WebSocket from 'ws';
import type { Msg } from '@switchboard/protocol';
import { SwitchboardClient, devToken, type ClientStats, type SocketLike } from '@switchboard/protocol/client';

export const elapsed = (t0: number) => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One message as its sender issued it; `seq` once its `send()` resolved. */
export interface SentRecord {
  conv: string;
  cmid: string;
  from: string;
  dev: string;
  body: string;
  seq?: number;
  error?: string;
}

/** A user's device: the client SDK over a `ws` socket this harness can drop abruptly. */
export class Device {
  readonly client: SwitchboardClient;
  /** What the SDK released to the application, per conversation, in release order. */
  readonly got = new Map<string, Msg[]>();
  /** Out-of-order or repeated releases, noted the moment they happen. */
  readonly violations: string[] = [];
  /** Every message this device sent with `send()`, per conversation, in call order (resends excluded). */
  readonly sentOrder = new Map<string, SentRecord[]>();
  /** Status changes with their detail (close codes), newest last, for failure reports. */
  readonly statusLog: string[] = [];
  private ws: WebSocket | null = null;
  drops = 0;

  constructor(
    edgeUrl: string,
    readonly user: string,
    readonly dev: string,
    readonly convs: string[],
  ) {
    this.client = new SwitchboardClient({
      url: edgeUrl,
      token: () => devToken(edgeUrl, user, dev),
      socket: (u) => {
        const ws = new WebSocket(u);
        ws.on('error', () => {}); // a refused connect is a close like any other for the SDK
        this.ws = ws;
        return ws as unknown as SocketLike;
      },
      onMessage: (m) => this.onMessage(m),
      onStatus: (st, detail) => {
        this.statusLog.push(`${new Date().toISOString().slice(11, 23)} ${st}${detail ? ` (${detail})` : ''}`);
        if (this.statusLog.length > 40) this.statusLog.shift();
      },
      backoff: { baseMs: 200, capMs: 4_000 },
    });
    for (const c of convs) {
      this.got.set(c, []);
      this.client.follow(c);
    }
  }

  get name(): string {
    return `${this.user}/${this.dev}`;
  }

  private onMessage(m: Msg): void {
    const list = this.got.get(m.conv);
    if (!list) return void this.violations.push(`${this.name}: message for a conversation it does not follow: ${m.conv}#${m.seq}`);
    const expected = (list.at(-1)?.seq ?? 0) + 1;
    if (m.seq !== expected) this.violations.push(`${this.name}: ${m.conv} released seq ${m.seq} after ${expected - 1}`);
    list.push(m);
  }

  /** Terminates the live socket without a close handshake (as a lost network would). */
  drop(): boolean {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.terminate();
    this.drops++;
    return true;
  }

  /** Highest seq released in order for `conv`. */
  have(conv: string): number {
    return this.got.get(conv)?.at(-1)?.seq ?? 0;
  }
}

export function sumStats(devices: Device[]): ClientStats {
  const total: ClientStats = { delivered: 0, duplicates: 0, gaps: 0, synced: 0, resent: 0, reconnects: 0, rateLimited: 0 };
  for (const d of devices) for (const k of Object.keys(total) as (keyof ClientStats)[]) total[k] += d.client.stats[k];
  return total;
}

/**
 * The seqs the sequencer gave out, from the senders' resolved `send()`s: for each conversation,
 * seq → record. Two cmids on one seq, or a seq between 1 and the last that nobody got, is a problem.
 */
export function assignedSeqs(records: SentRecord[], convs: string[]): { bySeq: Map<string, Map<number, SentRecord>>; last: Map<string, number>; problems: string[] } {
  const bySeq = new Map<string, Map<number, SentRecord>>(convs.map((c) => [c, new Map()]));
  const problems: string[] = [];
  for (const r of records) {
    if (r.seq === undefined) continue;
    const m = bySeq.get(r.conv)!;
    const prior = m.get(r.seq);
    if (prior && prior.cmid !== r.cmid) problems.push(`${r.conv}#${r.seq} was given to two messages: ${prior.from}:${prior.cmid} and ${r.from}:${r.cmid}`);
    else m.set(r.seq, r);
  }
  const last = new Map<string, number>();
  for (const [conv, m] of bySeq) {
    const n = m.size === 0 ? 0 : Math.max(...m.keys());
    last.set(conv, n);
    for (let s = 1; s <= n; s++) if (!m.has(s)) problems.push(`${conv}#${s}: no sent message got this seq`);
  }
  return { bySeq, last, problems };
}

/** Exactly-once, in order, no gaps, and the right content: what one device shows for one conversation. */
export function checkDevice(d: Device, conv: string, last: number, bySeq: Map<number, SentRecord>): string[] {
  const got = d.got.get(conv) ?? [];
  const out: string[] = [];
  const seqs = got.map((m) => m.seq);
  const want = Array.from({ length: last }, (_, i) => i + 1);
  if (seqs.length !== last || seqs.some((s, i) => s !== want[i])) {
    const seen = new Set<number>();
    const dups = seqs.filter((s) => (seen.has(s) ? true : (seen.add(s), false)));
    const missing = want.filter((s) => !seen.has(s));
    out.push(`${d.name} ${conv}: released ${seqs.length} of ${last}; missing ${fmtSeqs(missing)}; repeated ${fmtSeqs(dups)}`);
  }
  for (const m of got) {
    const r = bySeq.get(m.seq);
    if (r && (m.cmid !== r.cmid || m.from !== r.from || m.body !== r.body)) {
      out.push(`${d.name} ${conv}#${m.seq}: shows ${m.from}:${m.cmid} "${m.body}", sent was ${r.from}:${r.cmid} "${r.body}"`);
    }
  }
  return out;
}

/** "1-5,9,12-13" (first 20 runs). */
export function fmtSeqs(seqs: number[]): string {
  if (seqs.length === 0) return 'none';
  const sorted = [...seqs].sort((a, b) => a - b);
  const runs: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    runs.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return runs.length > 20 ? `${runs.slice(0, 20).join(',')},… (${seqs.length})` : runs.join(',');
}

// ---- Cassandra ----------------------------------------------------------------------------------

export interface StoredRow {
  seq: number;
  sender: string;
  device: string;
  cmid: string;
  content: string;
}

/** A conversation's message rows, read bucket by bucket (bucket = floor(seq / 1000)) up to `last`. */
export async function storedMessages(client: cassandra.Client, keyspace: string, conv: string, last: number): Promise<StoredRow[]> {
  const rows: StoredRow[] = [];
  const q = `SELECT seq, sender, device, cmid, content FROM ${keyspace}.messages WHERE conversation_id = ? AND bucket = ?`;
  // One bucket beyond the last seq's: a stray row with a higher seq would show up there.
  for (let b = 0; b <= Math.floor(last / 1000) + 1; b++) {
    for await (const r of (await client.execute(q, [conv, cassandra.types.Long.fromNumber(b)], { prepare: true, fetchSize: 1000 })) as unknown as AsyncIterable<cassandra.types.Row>) {
      rows.push({
        seq: (r.get('seq') as cassandra.types.Long).toNumber(),
        sender: r.get('sender') as string,
        device: r.get('device') as string,
        cmid: r.get('cmid') as string,
        content: (r.get('content') as string | null) ?? '',
      });
    }
  }
  return rows;
}

/** Each message present exactly once in Cassandra: rows are seqs 1..last, each the message sent with that seq. */
export function checkStored(conv: string, rows: StoredRow[], last: number, bySeq: Map<number, SentRecord>): string[] {
  const out: string[] = [];
  const seqs = rows.map((r) => r.seq);
  const seen = new Set(seqs);
  const missing = Array.from({ length: last }, (_, i) => i + 1).filter((s) => !seen.has(s));
  const extra = seqs.filter((s) => s < 1 || s > last);
  if (rows.length !== last || missing.length || extra.length) out.push(`cassandra ${conv}: ${rows.length} rows for ${last} messages; missing ${fmtSeqs(missing)}; beyond ${fmtSeqs(extra)}`);
  const byCmid = new Map<string, number>();
  for (const r of rows) {
    const key = `${r.sender}\u0000${r.cmid}`;
    const other = byCmid.get(key);
    if (other !== undefined) out.push(`cassandra ${conv}: ${r.sender}:${r.cmid} stored twice, as #${other} and #${r.seq}`);
    byCmid.set(key, r.seq);
    const s = bySeq.get(r.seq);
    if (s && (s.cmid !== r.cmid || s.from !== r.sender || s.dev !== r.device || s.body !== r.content)) {
      out.push(`cassandra ${conv}#${r.seq}: stored ${r.sender}:${r.cmid}, sent was ${s.from}:${s.cmid}`);
    }
  }
  return out;
}

export function cassandraClient(): cassandra.Client {
  return new cassandra.Client({
    contactPoints: process.env.TEST_CASSANDRA_CONTACT_POINTS!.split(','),
    localDataCenter: process.env.TEST_CASSANDRA_LOCAL_DC || 'datacenter1',
  });
}

// ---- Kafka --------------------------------------------------------------------------------------

/**
 * Restarts the Kafka broker the tests use (TEST_KAFKA_BROKERS): it must be the local stack's
 * (scripts/stack), started by this checkout or by another one on the same ports. SIGTERM, then the
 * same start as `npm run stack:up`; resolves once the broker answers again.
 */
export async function restartKafka(log: (line: string) => void): Promise<{ took_ms: number; stackDir: string }> {
  const { connectionInfo } = await import('../../scripts/stack/index.ts');
  const { restartEngine } = await import('../../scripts/stack/stack.ts');
  const { createLogger } = await import('../../scripts/stack/log.ts');
  const ours = connectionInfo().kafka.brokers;
  const used = (process.env.TEST_KAFKA_BROKERS ?? '').split(',').map((b) => b.trim().replace(/^localhost:/, '127.0.0.1:'));
  if (!used.some((b) => ours.includes(b))) {
    throw new Error(`TEST_KAFKA_BROKERS=${process.env.TEST_KAFKA_BROKERS} is not the local stack's Kafka (${ours.join(',')}); cannot restart it`);
  }
  const r = await restartEngine('kafka', { log: createLogger(log) });
  return { took_ms: r.took_ms, stackDir: r.stackDir };
}

// ---- region stage timing (GET /metrics), for the report ---------------------------------------

/** Mean message age at each point of the region's path and mean duration of each operation, since the region process started. */
export async function regionStages(regionUrl: string): Promise<string> {
  let text: string;
  try {
    const res = await fetch(`${regionUrl}/metrics`, { signal: AbortSignal.timeout(3_000) });
    if (!res.ok) return `region /metrics: HTTP ${res.status}`;
    text = await res.text();
  } catch (err) {
    return `region /metrics: ${(err as Error).message}`;
  }
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  // Histograms in seconds, shown in ms.
  for (const m of text.matchAll(/^switchboard_region_(message_age|operation_duration)_seconds_(sum|count)\{\w+="([\w]+)"\} ([\d.e+-]+)$/gm)) {
    const family = m[1] === 'message_age' ? 'msg_age' : 'op';
    (m[2] === 'sum' ? sums : counts).set(`${family}:${m[3]}`, m[2] === 'sum' ? Number(m[4]) * 1000 : Number(m[4]));
  }
  const mean = (k: string) => {
    const n = counts.get(k) ?? 0;
    return n ? `${Math.round((sums.get(k) ?? 0) / n)}` : '-';
  };
  const keys = [...counts.keys()];
  const ages = keys.filter((k) => k.startsWith('msg_age:')).map((k) => `${k.slice(8)}=${mean(k)}`);
  const ops = keys.filter((k) => k.startsWith('op:')).map((k) => `${k.slice(3)}=${mean(k)}`);
  const counters = [...text.matchAll(/^switchboard_(?:region|fanout)_(\w+)_total (\d+)$/gm)].map((m) => `${m[1]}=${m[2]}`);
  return `mean msg age (ms) at: ${ages.join(' ')}; mean op (ms): ${ops.join(' ')}; ${counters.join(' ')}`;
}
