/**
 * The client machinery shared by the Switchboard and the echo measurements: an open-loop sender
 * at a fixed rate, and per-message timestamps.
 *
 * Open loop: message i is *due* at start + i/rate by the wall clock, whatever happened to the
 * earlier ones, and every latency is measured from that due time (not from when the send
 * actually left). A stalled client or server therefore shows up as latency instead of quietly
 * lowering the offered rate (coordinated omission).
 */

/** Timestamps of one message, all `performance.now()` ms except `seqTs`. */
export interface Sample {
  lane: number;
  due: number;
  sentAt: number;
  /** The first reply to the sender: `sent` (Switchboard) or the echo. */
  ackAt?: number;
  /** `ts` of the `sent` reply: sequencing time at the ConversationDO, ms since the epoch. */
  seqTs?: number;
  /** The message arriving at the recipient (`msg`), or the echo. */
  recvAt?: number;
}

export class Run {
  readonly samples = new Map<string, Sample>();
  /** Epoch ms at performance.now() = 0, taken at the start of the run (for msg.ts arithmetic). */
  readonly epochOffset = Date.now() - performance.now();

  toEpoch(perfMs: number): number {
    return perfMs + this.epochOffset;
  }

  ack(key: string, at: number, seqTs?: number): void {
    const s = this.samples.get(key);
    if (!s || s.ackAt !== undefined) return;
    s.ackAt = at;
    if (seqTs !== undefined) s.seqTs = seqTs;
  }

  /** Messages that arrived again after their first arrival (the server retransmitted them). */
  duplicates = 0;

  recv(key: string, at: number): void {
    const s = this.samples.get(key);
    if (!s) return;
    if (s.recvAt === undefined) s.recvAt = at;
    else this.duplicates++;
  }

  /** All sent samples have an ack and a receipt. */
  complete(): boolean {
    for (const s of this.samples.values()) if (s.ackAt === undefined || s.recvAt === undefined) return false;
    return true;
  }
}

/**
 * Sends `rate × seconds` messages on the open-loop schedule, round-robin over the lanes.
 * `keyOf(i)` names message i; `send` must put it on the wire. Resolves after the last send.
 */
export function openLoop(run: Run, rate: number, seconds: number, lanes: number, keyOf: (i: number) => string, send: (i: number, lane: number, key: string) => void, signal?: AbortSignal): Promise<void> {
  const total = Math.max(1, Math.round(rate * seconds));
  const interval = 1000 / rate;
  const start = performance.now() + 20;
  let i = 0;
  return new Promise((resolve) => {
    const tick = () => {
      if (signal?.aborted) return resolve();
      const now = performance.now();
      while (i < total && start + i * interval <= now) {
        const lane = i % lanes;
        const key = keyOf(i);
        run.samples.set(key, { lane, due: start + i * interval, sentAt: performance.now() });
        send(i, lane, key);
        i++;
      }
      if (i >= total) return resolve();
      setTimeout(tick, Math.max(0, start + i * interval - performance.now()));
    };
    setTimeout(tick, Math.max(0, start - performance.now()));
  });
}

/** Waits until every message is acked and received, or `timeoutMs` passes. */
export async function drain(run: Run, timeoutMs: number, signal?: AbortSignal): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!run.complete() && performance.now() < deadline && !signal?.aborted) await new Promise((r) => setTimeout(r, 25));
}

export interface Dist {
  n: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

/** Nearest-rank percentiles of exact samples; null when there are none. */
export function dist(values: number[]): Dist | null {
  if (values.length === 0) return null;
  const s = Float64Array.from(values).sort();
  const q = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))]!;
  const r = (x: number) => Math.round(x * 100) / 100;
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, p50Ms: r(q(0.5)), p95Ms: r(q(0.95)), p99Ms: r(q(0.99)), maxMs: r(s[s.length - 1]!), meanMs: r(sum / s.length) };
}

export interface PhaseResult {
  rate: number;
  seconds: number;
  messages: number;
  /** Messages per second actually put on the wire (first to last send). */
  achievedSendRate: number;
  /** Messages per second received (first due time to last receipt). */
  achievedRecvRate: number;
  /** How far sends lagged their due time (client scheduling). */
  sendLag: Dist | null;
  /** due → first reply (`sent`, or the echo). */
  ack: Dist | null;
  /** due → arrival at the recipient (end to end), or the echo. */
  e2e: Dist | null;
  /** No reply / no arrival by the end of the drain window. */
  unacked: number;
  /** Arrivals beyond the first of the same message (retransmits the device received). */
  duplicates: number;
  lost: number;
  /** Arrived, but later than `lateMs` after the due time. */
  late: number;
  lateMs: number;
}

export function phaseResult(run: Run, rate: number, seconds: number, lateMs: number): PhaseResult {
  const all = [...run.samples.values()];
  const sentAts = all.map((s) => s.sentAt);
  const firstSent = Math.min(...sentAts);
  const lastSent = Math.max(...sentAts);
  const firstDue = Math.min(...all.map((s) => s.due));
  const recvd = all.filter((s) => s.recvAt !== undefined);
  const lastRecv = recvd.length ? Math.max(...recvd.map((s) => s.recvAt!)) : firstDue;
  const e2e = recvd.map((s) => s.recvAt! - s.due);
  const r1 = (x: number) => Math.round(x * 10) / 10;
  return {
    rate,
    seconds,
    messages: all.length,
    achievedSendRate: r1(all.length > 1 ? ((all.length - 1) * 1000) / (lastSent - firstSent) : 0),
    achievedRecvRate: r1(recvd.length > 1 ? (recvd.length * 1000) / (lastRecv - firstDue) : 0),
    sendLag: dist(all.map((s) => s.sentAt - s.due)),
    ack: dist(all.filter((s) => s.ackAt !== undefined).map((s) => s.ackAt! - s.due)),
    e2e: dist(e2e),
    unacked: all.filter((s) => s.ackAt === undefined).length,
    lost: all.length - recvd.length,
    duplicates: run.duplicates,
    late: e2e.filter((x) => x > lateMs).length,
    lateMs,
  };
}
