import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Device, assignedSeqs, checkDevice, elapsed, sleep, type SentRecord } from './faults.harness.ts';
import { createConversation, token } from './socket.ts';
import { realEngineEnv, startSystem, type System } from './system.ts';

/**
 * Graceful stops on deploy, mid-stream (real engines): SIGTERM to the region (it stops taking
 * requests, finishes those in flight, hands its Kafka partitions over with their offsets committed
 * and exits 0), then SIGTERM to the edge runtime (it drains: every socket closed with 1012 and a
 * reconnect hint spread over EDGE_DRAIN_SPREAD_MS, then stops). Devices on the client SDK keep
 * sending throughout; every device shows every message exactly once, in order, and reconnected.
 */
const MESSAGES = 240;
const USERS = ['drain_a', 'drain_b', 'drain_c'];

if (!realEngineEnv('probe')) {
  if (process.env.CI === 'true') it('graceful drain (real engines)', () => assert.fail('CI requires the real engines'));
  else it('graceful drain (real engines)', { skip: 'real engines not running: npm run stack:up, then npm test' }, () => {});
} else {
  describe('SIGTERM to the region and to the edge mid-stream (real engines)', { timeout: 300_000 }, () => {
    let sys: System;
    const lines: { svc: string; line: string }[] = [];
    const devices: Device[] = [];

    before(async () => {
      sys = await startSystem('real', { regionEnv: { LOG_LEVEL: 'info' }, sink: (svc, line) => void lines.push({ svc, line }) });
    });
    after(async () => {
      for (const d of devices) d.client.close();
      await sys?.stop();
    });

    it(`${MESSAGES} messages in a group and a direct conversation; nothing lost or duplicated; clients reconnect`, async () => {
      const t0 = Date.now();
      const note = (line: string) => process.stderr.write(`[drain +${elapsed(t0)}] ${line}\n`);
      const group = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, USERS[0]!, 'setup'), USERS.slice(1), { title: 'drain' })).id;
      const direct = (await createConversation(sys.edgeUrl, await token(sys.edgeUrl, USERS[0]!, 'setup'), [USERS[1]!], { direct: true })).id;
      const convsOf = (user: string) => (user === USERS[2] ? [group] : [group, direct]);
      for (const user of USERS) for (const dev of ['phone', 'laptop']) devices.push(new Device(sys.edgeUrl, user, dev, convsOf(user)));
      await Promise.all(devices.map((d) => d.client.connect()));

      const records: SentRecord[] = [];
      const pending = new Set<Promise<unknown>>();
      const sendOne = (i: number) => {
        const d = devices[i % devices.length]!;
        const conv = d.convs[i % d.convs.length]!;
        const r: SentRecord = { conv, cmid: `${d.name}.${i}`, from: d.user, dev: d.dev, body: `m${i} from ${d.name}` };
        records.push(r);
        const p = d.client.send(conv, r.body, r.cmid).then(
          (f) => void (r.seq = f.seq),
          (err: Error) => void (r.error = err.message),
        );
        pending.add(p);
        void p.finally(() => pending.delete(p));
      };
      const has = (svc: string, text: string) => lines.some((l) => l.svc === svc && l.line.includes(text));

      for (let i = 0; i < MESSAGES; i++) {
        if (i === MESSAGES / 3) {
          note('SIGTERM to the region');
          const s = Date.now();
          await sys.restartRegion();
          const from = lines.findIndex((l) => l.svc === 'region' && l.line.includes('"msg":"stopping"'));
          assert.ok(has('region', '"msg":"stopped"'), `the region stopped gracefully (its "stopped" line), not by the force timeout:\n${lines.slice(from, from + 20).filter((l) => l.svc === 'region').map((l) => l.line.slice(0, 300)).join('\n')}`);
          note(`region stopped and started again in ${Date.now() - s} ms`);
        }
        if (i === (2 * MESSAGES) / 3) {
          note('SIGTERM to the edge');
          const s = Date.now();
          await sys.restartEdge();
          note(`edge drained, stopped and started again in ${Date.now() - s} ms`);
        }
        sendOne(i);
        await sleep(25);
      }
      await Promise.all(pending);
      const errors = records.filter((r) => r.error);
      assert.deepEqual(errors.map((r) => `${r.cmid}: ${r.error}`), [], 'every send resolved (the SDK resends across the restarts)');

      // The edge drained: each device's socket was closed with 1012 by the server, and it came back.
      const drained = lines.find((l) => l.svc === 'edge' && l.line.includes('"msg":"drained"'));
      assert.ok(drained, 'the edge runner drained before stopping');
      assert.match(drained.line, new RegExp(`"sockets":${devices.length}\\b`), `every device's socket was drained: ${drained.line}`);
      for (const d of devices) assert.ok(d.statusLog.some((s) => s.includes('closed 1012')), `${d.name} was closed with 1012: ${d.statusLog.join(' | ')}`);

      const { bySeq, last, problems } = assignedSeqs(records, [group, direct]);
      assert.deepEqual(problems, []);
      const complete = () => devices.every((d) => d.convs.every((c) => d.have(c) >= last.get(c)!));
      for (const end = Date.now() + 60_000; !complete() && Date.now() < end; ) await sleep(200);
      const report = devices.flatMap((d) => [...d.violations, ...d.convs.flatMap((c) => checkDevice(d, c, last.get(c)!, bySeq.get(c)!))]);
      assert.deepEqual(report, [], 'each device shows each message exactly once, in order');
      for (const d of devices) assert.equal(d.client.status, 'online', `${d.name} reconnected`);
      note(`done: ${records.length} messages, group last seq ${last.get(group)}, direct last seq ${last.get(direct)}`);
    });
  });
}
