/**
 * Fault injection on the real engines and workerd (issue #4). Four users with two devices each,
 * in three direct conversations and three groups, send thousands of messages through the client
 * SDK while the harness kills -9 and restarts the region (twice), restarts Kafka, restarts the edge
 * runtime (kill -9 of the edge runner and its workerd), drops random WebSockets mid-stream, and has clients send
 * already-used cmids again (from the same device and from the user's other device).
 *
 * Then, for every device and conversation: every message released exactly once, in seq order,
 * no gaps, with the content that was sent; every send() resolved; a reused cmid got its original
 * seq; each sender device's messages were sequenced in the order it sent them; and Cassandra holds
 * each message exactly once (seqs 1..N per conversation, one row per (sender, cmid)).
 *
 * It prints one block of counts, summed over the devices' SDK `stats`:
 *   sent                   messages sequenced (= FAULTS_MESSAGES when all is well)
 *   delivered              messages the SDKs released to the application (expected: each device × its conversations' N)
 *   duplicates_suppressed  incoming copies dropped because that (conv, seq) was already there (server retransmits, fan-out redelivery)
 *   retransmits            sends the SDKs repeated with their cmid after a lost connection or reply
 *   gaps_filled            seq jumps detected and answered by a sync of the missing range
 *   synced, reconnects     messages recovered by sync; connections opened after the first
 *   faults_injected        what the harness did
 * Progress, fault timings and the region's stage timing (GET /metrics) go to stderr.
 *
 *   FAULTS_MESSAGES  messages in the run (default 3000)
 *   FAULTS_RATE      messages per second offered (default 40)
 *   FAULTS_SETTLE_S  after the stream, how long sends, devices and Cassandra get to be complete (default 240)
 *   FAULTS_SKIP      comma list of faults to leave out: region,kafka,edge,drops,resend (debugging)
 *   E2E_VERBOSE=1    region and edge logs on stderr
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type cassandra from 'cassandra-driver';
import { startSystem, realEngineEnv, type System } from './system.ts';
import { createConversation, token } from './socket.ts';
import {
  Device,
  assignedSeqs,
  cassandraClient,
  checkDevice,
  checkStored,
  elapsed,
  regionStages,
  restartKafka,
  sleep,
  storedMessages,
  sumStats,
  type SentRecord,
  type StoredRow,
} from './faults.harness.ts';

const MESSAGES = Number(process.env.FAULTS_MESSAGES || 3000);
const RATE = Number(process.env.FAULTS_RATE || 40);
const SKIP = new Set((process.env.FAULTS_SKIP ?? '').split(',').map((s) => s.trim()).filter(Boolean));
/** After the stream: how long every device and Cassandra get to have everything. */
const SETTLE_MS = Number(process.env.FAULTS_SETTLE_S || 240) * 1000;
/** One in this many sends is followed by a send of an already-used cmid. */
const RESEND_EVERY = 25;

const USERS = ['ann', 'ben', 'cat', 'dan'];
const DEVICES = ['phone', 'laptop'];
const CONVERSATIONS: { members: string[]; direct?: boolean }[] = [
  { members: ['ann', 'ben'], direct: true },
  { members: ['cat', 'dan'], direct: true },
  { members: ['ann', 'dan'], direct: true },
  { members: ['ann', 'ben', 'cat'] },
  { members: ['ben', 'cat', 'dan'] },
  { members: ['ann', 'ben', 'cat', 'dan'] },
];

type FaultName = 'region_kill' | 'kafka_restart' | 'edge_restart' | 'socket_drop' | 'cmid_resend';

if (realEngineEnv('probe')) faultSuite();
else if (process.env.CI === 'true') {
  it('fault injection (real engines)', () => {
    throw new Error('CI requires the real engines: TEST_CASSANDRA_CONTACT_POINTS, TEST_KAFKA_BROKERS and TEST_REDIS_URL are not all set');
  });
} else it('fault injection (real engines)', { skip: 'real engines not running: npm run stack:up, then npm test' }, () => {});

function faultSuite(): void {
  describe('fault injection (real engines)', { timeout: 900_000 }, () => {
    let sys: System;
    let cql: cassandra.Client | null = null;
    const devices: Device[] = [];

    before(async () => {
      sys = await startSystem('real');
    });
    after(async () => {
      for (const d of devices) d.client.close();
      await cql?.shutdown().catch(() => {});
      await sys?.stop();
    });

    it(`${MESSAGES} messages, 8 devices, through region kills, a Kafka restart, an edge restart, socket drops and cmid resends`, async () => {
      const t0 = Date.now();
      const note = (line: string) => process.stderr.write(`[faults +${elapsed(t0)}] ${line}\n`);

      // ---- setup: conversations, then every device online and following its conversations ----
      const convs: { id: string; members: string[] }[] = [];
      for (const c of CONVERSATIONS) {
        const owner = c.members[0]!;
        const created = await createConversation(sys.edgeUrl, await token(sys.edgeUrl, owner, 'setup'), c.members.slice(1), c.direct ? { direct: true } : {});
        convs.push({ id: created.id, members: c.members });
      }
      const convIds = convs.map((c) => c.id);
      const convsOf = (user: string) => convs.filter((c) => c.members.includes(user)).map((c) => c.id);
      for (const user of USERS) for (const dev of DEVICES) devices.push(new Device(sys.edgeUrl, user, dev, convsOf(user)));
      await Promise.all(devices.map((d) => d.client.connect()));
      note(`${devices.length} devices online in ${convs.length} conversations`);

      // ---- the stream ----
      const records: SentRecord[] = [];
      const pending = new Set<Promise<unknown>>();
      const resendProblems: string[] = [];
      const faults: Record<FaultName, number> = { region_kill: 0, kafka_restart: 0, edge_restart: 0, socket_drop: 0, cmid_resend: 0 };
      const faultLog: string[] = [];
      const track = (p: Promise<unknown>) => {
        pending.add(p);
        void p.finally(() => pending.delete(p));
      };
      const pick = <T>(xs: T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
      // Phones send three times as often as laptops.
      const senders = devices.flatMap((d) => (d.dev === 'phone' ? [d, d, d] : [d]));
      const resending = new Set<string>();

      const sendOne = (i: number) => {
        const d = pick(senders);
        const conv = pick(d.convs);
        const r: SentRecord = { conv, cmid: `${d.user}.${d.dev}.${i}`, from: d.user, dev: d.dev, body: `m${i} from ${d.name}` };
        records.push(r);
        const order = d.sentOrder.get(conv) ?? [];
        order.push(r);
        d.sentOrder.set(conv, order);
        track(
          d.client.send(conv, r.body, r.cmid).then(
            (f) => void (r.seq = f.seq),
            (err: Error) => void (r.error = err.message),
          ),
        );
      };

      /** (e) An already-used cmid sent again, from the same device or the user's other device: same seq, no new message. */
      const resendOne = () => {
        const done = records.filter((r) => r.seq !== undefined && !resending.has(r.cmid));
        if (done.length === 0) return;
        const r = pick(done.slice(-200));
        const d = pick(devices.filter((x) => x.user === r.from));
        resending.add(r.cmid);
        faults.cmid_resend++;
        track(
          d.client.send(r.conv, r.body, r.cmid).then(
            (f) => {
              if (f.seq !== r.seq) resendProblems.push(`${r.from}:${r.cmid} resent from ${d.name} got seq ${f.seq}, originally ${r.seq}`);
            },
            (err: Error) => void resendProblems.push(`${r.from}:${r.cmid} resent from ${d.name} failed: ${err.message}`),
          ).finally(() => resending.delete(r.cmid)),
        );
      };

      // Faults at fractions of the stream; the stream does not pass the next fault's point until
      // the previous fault is over, so every fault happens with messages flowing.
      const schedule: { at: number; name: FaultName; run: () => Promise<string> }[] = [];
      const regionKill = async () => {
        await sys.stopRegion({ hard: true });
        await sleep(2_000);
        const s = Date.now();
        await sys.startRegion();
        return `region kill -9, down 2 s, restarted in ${Date.now() - s} ms`;
      };
      if (!SKIP.has('region')) schedule.push({ at: 0.12, name: 'region_kill', run: regionKill });
      if (!SKIP.has('kafka'))
        schedule.push({
          at: 0.32,
          name: 'kafka_restart',
          run: async () => {
            const lines: string[] = [];
            try {
              const r = await restartKafka((l) => lines.push(l));
              return `kafka restart (stack ${r.stackDir}) in ${r.took_ms} ms`;
            } catch (err) {
              throw new Error(`${(err as Error).message}\n${lines.slice(-20).join('\n')}`);
            }
          },
        });
      if (!SKIP.has('edge'))
        schedule.push({
          at: 0.52,
          name: 'edge_restart',
          run: async () => {
            const s = Date.now();
            await sys.restartEdge({ hard: true });
            return `edge runtime kill -9 and restart in ${Date.now() - s} ms`;
          },
        });
      if (!SKIP.has('region')) schedule.push({ at: 0.72, name: 'region_kill', run: regionKill });

      let issued = 0;
      let faultsDone = 0;
      let streamOver = false;
      let faultFailed = false;
      const faultLoop = (async () => {
        for (const f of schedule) {
          while (issued < f.at * MESSAGES) await sleep(50);
          note(`${f.name} at message ${issued}…`);
          const what = await f.run().catch((err: Error) => {
            faultFailed = true; // releases the stream; the error fails the test below
            throw new Error(`injecting ${f.name} failed: ${err.message}`);
          });
          faults[f.name]++;
          faultsDone++;
          faultLog.push(`+${elapsed(t0)} ${what} (at message ${issued})`);
          note(what);
        }
      })();
      faultLoop.catch(() => {}); // awaited after the stream
      const dropLoop = (async () => {
        if (SKIP.has('drops')) return;
        while (!streamOver) {
          await sleep(800 + Math.random() * 1_200);
          // Now and then two at once, e.g. both devices of one user.
          const n = Math.random() < 0.2 ? 2 : 1;
          for (let k = 0; k < n; k++) if (pick(devices).drop()) faults.socket_drop++;
        }
      })();

      const streamStart = Date.now();
      const gateAt = (k: number) => (k < schedule.length ? schedule[k]!.at * MESSAGES : Infinity);
      for (let i = 0; i < MESSAGES; i++) {
        // Hold the stream before the point of fault k+1 until fault k is over.
        while (!faultFailed && faultsDone < schedule.length && i >= gateAt(faultsDone + 1)) await sleep(50);
        const due = streamStart + (i * 1000) / RATE;
        if (due > Date.now()) await sleep(due - Date.now());
        sendOne(i);
        issued = i + 1;
        if (!SKIP.has('resend') && i % RESEND_EVERY === RESEND_EVERY - 1) resendOne();
      }
      try {
        await faultLoop;
      } finally {
        streamOver = true;
        await dropLoop;
      }
      const streamMs = Date.now() - streamStart;
      note(`stream done: ${MESSAGES} sends issued in ${(streamMs / 1000).toFixed(1)} s; waiting for every send to resolve`);
      note(`region since its last start: ${await regionStages(sys.regionUrl)}`);

      // ---- settle: every send resolves, every device has everything ----
      const settleDeadline = Date.now() + SETTLE_MS;
      while (pending.size > 0 && Date.now() < settleDeadline) await sleep(100);
      const unresolved = records.filter((r) => r.seq === undefined && r.error === undefined);
      const failed = records.filter((r) => r.error !== undefined);
      const { bySeq, last, problems: seqProblems } = assignedSeqs(records, convIds);
      const complete = () => devices.every((d) => d.convs.every((c) => d.have(c) >= last.get(c)!));
      const settleStart = Date.now();
      let nextReport = Date.now() + 10_000;
      while (!complete() && Date.now() < settleDeadline) {
        await sleep(100);
        if (Date.now() >= nextReport) {
          nextReport += 10_000;
          const behind = devices.flatMap((d) => d.convs.filter((c) => d.have(c) < last.get(c)!).map((c) => `${d.name}:${convIds.indexOf(c)}@${d.have(c)}/${last.get(c)}`));
          note(`settling: ${behind.length} device-conversations behind: ${behind.join(' ')}`);
          note(`region since its last start: ${await regionStages(sys.regionUrl)}`);
        }
      }
      const settleMs = Date.now() - settleStart;
      note(complete() ? `every device has everything ${settleMs} ms after the last send resolved` : `devices still incomplete ${SETTLE_MS / 1000} s after the stream`);

      // Give late duplicates a moment to show up (and be suppressed) before counting.
      await sleep(1_000);
      const stats = sumStats(devices);
      const stalled = devices.flatMap((d) => d.convs.filter((c) => d.have(c) < last.get(c)!).map((c) => `${d.name} ${c}: has ${d.have(c)} of ${last.get(c)} (status ${d.client.status})`));
      for (const d of devices) d.client.close();

      // ---- Cassandra: each message exactly once ----
      cql = cassandraClient();
      const keyspace = `${sys.regionEnv.NAMESPACE}_chat`.toLowerCase();
      let stored = new Map<string, StoredRow[]>();
      const storedOk = () => convIds.every((c) => stored.get(c)?.length === last.get(c));
      for (;;) {
        stored = new Map(await Promise.all(convIds.map(async (c) => [c, await storedMessages(cql!, keyspace, c, last.get(c)!)] as const)));
        if (storedOk() || Date.now() > settleDeadline) break;
        await sleep(1_000);
      }

      // ---- the counts ----
      const sent = [...last.values()].reduce((a, b) => a + b, 0);
      const expectedDeliveries = devices.reduce((n, d) => n + d.convs.reduce((m, c) => m + last.get(c)!, 0), 0);
      const rows = [...stored.values()].reduce((n, r) => n + r.length, 0);
      const fi = Object.entries(faults).map(([k, v]) => `${k}:${v}`).join(',');
      console.log(
        [
          `faults: sent=${sent} delivered=${stats.delivered} (expected ${expectedDeliveries}) duplicates_suppressed=${stats.duplicates} retransmits=${stats.resent} gaps_filled=${stats.gaps} synced=${stats.synced} reconnects=${stats.reconnects} cassandra_rows=${rows}`,
          `faults_injected={${fi}}`,
          `stream ${(streamMs / 1000).toFixed(1)} s at up to ${RATE}/s; settled ${(settleMs / 1000).toFixed(1)} s after the last send; per conversation: ${convIds.map((c) => last.get(c)).join(',')}`,
          ...faultLog.map((l) => `  ${l}`),
        ].join('\n'),
      );

      // ---- assertions: every problem is listed before the first one fails the test ----
      const orderProblems = devices.flatMap((d) =>
        [...d.sentOrder].flatMap(([conv, rs]) =>
          rs.flatMap((r, i) => (i > 0 && r.seq !== undefined && rs[i - 1]!.seq !== undefined && r.seq <= rs[i - 1]!.seq! ? [`${d.name} ${conv}: ${r.cmid} got #${r.seq} after #${rs[i - 1]!.seq}`] : [])),
        ),
      );
      const checks: [string, string[]][] = [
        ['every send() resolves', unresolved.map((r) => `${r.from}/${r.dev}:${r.cmid} in ${r.conv}`)],
        ['no send() is refused', failed.map((r) => `${r.cmid}: ${r.error}`)],
        ['the sequencer gave each message one seq, 1..N without gaps', seqProblems],
        ['a reused cmid gets its original seq back', resendProblems],
        ["a device's messages are sequenced in the order it sent them", orderProblems],
        ['every device has every message', stalled],
        ['no release out of order or twice', devices.flatMap((d) => d.violations)],
        ['each device shows each message exactly once, in order, with what was sent', devices.flatMap((d) => d.convs.flatMap((c) => checkDevice(d, c, last.get(c)!, bySeq.get(c)!)))],
        ['the SDK released exactly the expected messages', stats.delivered === expectedDeliveries ? [] : [`delivered ${stats.delivered}, expected ${expectedDeliveries}`]],
        ['Cassandra holds each message exactly once', convIds.flatMap((c) => checkStored(c, stored.get(c)!, last.get(c)!, bySeq.get(c)!))],
        ['every fault was injected', SKIP.size ? [] : Object.entries(faults).flatMap(([k, n]) => (n > 0 ? [] : [`${k}: none`]))],
      ];
      const failing = checks.filter(([, problems]) => problems.length > 0);
      if (failing.length > 0) {
        const lines = failing.flatMap(([what, problems]) => [`FAILED: ${what} (${problems.length})`, ...problems.slice(0, 12).map((p) => `  ${p}`), ...(problems.length > 12 ? [`  … ${problems.length - 12} more`] : [])]);
        const troubled = new Set([...unresolved.map((r) => `${r.from}/${r.dev}`), ...stalled.map((l) => l.split(' ')[0]!)]);
        for (const d of devices.filter((x) => troubled.has(x.name))) lines.push(`status log of ${d.name} (now ${d.client.status}):`, ...d.statusLog.map((l) => `  ${l}`));
        console.log(lines.join('\n'));
      }
      for (const [what, problems] of checks) assert.deepEqual(problems.slice(0, 20), [], what);
    });
  });
}
