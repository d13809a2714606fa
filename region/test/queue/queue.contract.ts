import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { dlqOf, type Queue, type QueueObserver, type QueueRecord, type SubscribeOptions, type Subscription } from '../../src/queue/queue.ts';
import { runId } from '../engines.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** What an implementation can show beyond the common contract. Both default to true. */
export interface QueueCapabilities {
  /** Records survive their consumer: an unfinished record goes to the group's next consumer. */
  durable?: boolean;
  /** Several consumers can share one group at once. */
  sharedGroups?: boolean;
}

/**
 * The Queue contract (src/queue.ts), for any implementation. `make` returns a fresh instance
 * telling `observer` what it does; the suite closes it. Every test uses its own topic and group
 * names, unique per run.
 */
export function queueContract(name: string, make: (observer: QueueObserver) => Promise<Queue>, caps: QueueCapabilities = {}): void {
  const { durable = true, sharedGroups = true } = caps;
  describe(`queue contract: ${name}`, () => {
    let queue: Queue;
    /** Topics the queue said it dead-lettered a record of, in order. */
    const deadLettered: string[] = [];
    const run = runId();
    let n = 0;
    const subs: Subscription[] = [];
    /** A fresh topic (created with its DLQ) and group name. */
    async function fresh(): Promise<{ topic: string; group: string }> {
      const id = `${run}-${++n}`;
      const topic = `t${id}`;
      await queue.init([topic, dlqOf(topic)]);
      return { topic, group: `g${id}` };
    }
    async function subscribe(topic: string, group: string, handler: (r: QueueRecord) => Promise<void>, opts?: SubscribeOptions) {
      const sub = await queue.subscribe(topic, group, handler, opts);
      subs.push(sub);
      return sub;
    }

    before(async () => {
      queue = await make({ deadLettered: (topic) => void deadLettered.push(topic) });
    });
    after(async () => {
      for (const s of subs) await s.stop().catch(() => {});
      await queue.close();
    });

    it('delivers a record with its key and value intact', async () => {
      const { topic, group } = await fresh();
      const got: QueueRecord[] = [];
      await subscribe(topic, group, async (r) => void got.push(r));
      const value = { kind: 'msg', msg: { conv: 'c1', seq: 7, body: 'héllo ✓', nested: [1, null, { a: true }] } };
      await queue.publish(topic, [{ key: 'c1', value }]);
      await waitFor('the record', () => got.length === 1);
      assert.deepEqual(got, [{ key: 'c1', value }]);
    });

    it('per key, records reach the handler in publish order, one at a time (many keys interleaved)', async () => {
      const { topic, group } = await fresh();
      const KEYS = 12;
      const PER_KEY = 25;
      const seen = new Map<string, number[]>();
      const busy = new Set<string>();
      let overlaps = 0;
      await subscribe(topic, group, async (r) => {
        if (busy.has(r.key)) overlaps++;
        busy.add(r.key);
        await sleep(Math.random() < 0.2 ? 2 : 0);
        const list = seen.get(r.key) ?? [];
        list.push((r.value as { i: number }).i);
        seen.set(r.key, list);
        busy.delete(r.key);
      });
      // Five publishes, each interleaving every key: k0#0, k1#0, ..., k0#1, k1#1, ...
      for (let chunk = 0; chunk < 5; chunk++) {
        const records: QueueRecord[] = [];
        for (let i = chunk * 5; i < chunk * 5 + 5; i++) for (let k = 0; k < KEYS; k++) records.push({ key: `key${k}`, value: { i } });
        await queue.publish(topic, records);
      }
      const total = () => [...seen.values()].reduce((a, l) => a + l.length, 0);
      await waitFor(`${KEYS * PER_KEY} records`, () => total() >= KEYS * PER_KEY);
      assert.equal(overlaps, 0, 'two records of one key were in the handler at once');
      for (let k = 0; k < KEYS; k++) assert.deepEqual(seen.get(`key${k}`), Array.from({ length: PER_KEY }, (_, i) => i), `order of key${k}`);
    });

    it('a record published before anyone subscribed reaches a new group (from the earliest record)', async () => {
      const { topic, group } = await fresh();
      await queue.publish(topic, [1, 2, 3].map((i) => ({ key: 'early', value: { i } })));
      const got: number[] = [];
      await subscribe(topic, group, async (r) => void got.push((r.value as { i: number }).i));
      await waitFor('the early records', () => got.length >= 3);
      assert.deepEqual(got, [1, 2, 3]);
    });

    it('with batch, waiting records of a key are handled in runs, in order, each once; a failed run is handled one by one', async () => {
      const { topic, group } = await fresh();
      // Published before the group exists, so they wait together for it.
      await queue.publish(topic, [
        ...Array.from({ length: 20 }, (_, i) => ({ key: 'k', value: { i: i + 1 } })),
        ...Array.from({ length: 5 }, (_, i) => ({ key: 'j', value: { i: 101 + i } })),
      ]);
      const handled = new Map<string, number[]>();
      const runs: number[] = [];
      let failed = false;
      const note = (r: QueueRecord) => handled.set(r.key, [...(handled.get(r.key) ?? []), (r.value as { i: number }).i]);
      const busy = new Set<string>();
      let overlaps = 0;
      await subscribe(
        topic,
        group,
        async (r) => {
          if (busy.has(r.key)) overlaps++;
          note(r);
        },
        {
          batch: {
            max: 8,
            handler: async (records) => {
              const key = records[0]!.key;
              assert.ok(records.every((r) => r.key === key), 'one key per run');
              if (busy.has(key)) overlaps++;
              busy.add(key);
              await sleep(5);
              busy.delete(key);
              if (!failed && records.some((r) => (r.value as { i: number }).i === 13)) {
                failed = true;
                throw new Error('this run fails once');
              }
              runs.push(records.length);
              for (const r of records) note(r);
            },
          },
        },
      );
      await waitFor('25 records', () => (handled.get('k')?.length ?? 0) + (handled.get('j')?.length ?? 0) >= 25);
      await sleep(300);
      assert.deepEqual(handled.get('k'), Array.from({ length: 20 }, (_, i) => i + 1));
      assert.deepEqual(handled.get('j'), [101, 102, 103, 104, 105]);
      assert.ok(failed, 'the run holding 13 failed once');
      assert.ok(runs.some((n) => n > 1), `records were handled in runs (${JSON.stringify(runs)})`);
      assert.ok(runs.every((n) => n <= 8), 'no run exceeds max');
      assert.equal(overlaps, 0);
    });

    it('a throwing handler sees the record again, and the key waits for it', async () => {
      const { topic, group } = await fresh();
      const log: string[] = [];
      let failures = 0;
      await subscribe(
        topic,
        group,
        async (r) => {
          const v = (r.value as { v: string }).v;
          log.push(v);
          if (v === 'a' && failures < 2) {
            failures++;
            throw new Error('transient');
          }
        },
        { maxAttempts: 5 },
      );
      await queue.publish(topic, [{ key: 'k', value: { v: 'a' } }, { key: 'k', value: { v: 'b' } }]);
      await waitFor('b after the retries of a', () => log.includes('b'));
      assert.deepEqual(log, ['a', 'a', 'a', 'b']);
    });

    it(`after maxAttempts the record goes to <topic>.dlq and the key moves on`, async () => {
      const { topic, group } = await fresh();
      const attempts: string[] = [];
      const dead: QueueRecord[] = [];
      await subscribe(topic, group, async (r) => {
        const v = (r.value as { v: string }).v;
        attempts.push(v);
        if (v === 'poison') throw new Error('always fails');
      }, { maxAttempts: 3 });
      await subscribe(dlqOf(topic), `${group}-dlq`, async (r) => void dead.push(r));
      await queue.publish(topic, [{ key: 'k', value: { v: 'poison', n: 1 } }, { key: 'k', value: { v: 'fine' } }]);
      await waitFor('the dead letter and the next record', () => dead.length >= 1 && attempts.includes('fine'));
      assert.deepEqual(attempts, ['poison', 'poison', 'poison', 'fine']);
      assert.deepEqual(dead, [{ key: 'k', value: { v: 'poison', n: 1 } }]);
      assert.deepEqual(deadLettered.filter((t) => t === topic), [topic], 'the observer is told once, with the topic');
    });

    it('a record that keeps failing holds up only its own key: every other key, on every partition, flows meanwhile', async () => {
      const { topic, group } = await fresh();
      let attempts = 0;
      const handled: string[] = [];
      let deadAt = -1;
      await subscribe(topic, group, async (r) => {
        const v = r.value as { v: string };
        if (v.v === 'poison') {
          attempts++;
          throw new Error('always fails');
        }
        handled.push(`${r.key}:${v.v}`);
      }, { maxAttempts: 7 });
      await subscribe(dlqOf(topic), `${group}-dlq`, async () => void (deadAt = handled.length));
      await queue.publish(topic, [{ key: 'bad', value: { v: 'poison' } }, { key: 'bad', value: { v: 'after-poison' } }]);
      await waitFor('the poison to fail twice (it is retrying)', () => attempts >= 2);
      // Other keys (spread over every partition) published while the poison retries.
      const others = Array.from({ length: 40 }, (_, k) => ({ key: `good${k}`, value: { v: 'x' } }));
      await queue.publish(topic, others);
      await waitFor('every other key', () => others.every((o) => handled.includes(`${o.key}:x`)), 30_000);
      assert.equal(deadAt, -1, 'the other keys were handled while the poison was still retrying, not after it was dead-lettered');
      assert.ok(!handled.includes('bad:after-poison'), 'the failing key itself waits: its next record is not handled before the poison is settled');
      await waitFor('the poison dead-lettered, then its key moving on', () => deadAt >= 0 && handled.includes('bad:after-poison'), 60_000);
    });

    it('lag counts the records a group has not handled yet, and drops to 0 once they are', async () => {
      const { topic, group } = await fresh();
      const total = async () => (await queue.lag([{ topic, group }])).reduce((n, r) => n + r.records, 0);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const handled: number[] = [];
      await subscribe(topic, group, async (r) => {
        await gate;
        handled.push((r.value as { i: number }).i);
      });
      await queue.publish(topic, [1, 2, 3, 4, 5].map((i) => ({ key: `k${i % 2}`, value: { i } })));
      // Kafka's answer follows the brokers' end offsets: give it a moment to show all five.
      const deadline = Date.now() + 10_000;
      while ((await total()) < 5 && Date.now() < deadline) await sleep(100);
      assert.equal(await total(), 5, 'five published, none handled');
      for (const r of await queue.lag([{ topic, group }])) assert.ok(r.topic === topic && r.group === group && Number.isInteger(r.partition), JSON.stringify(r));
      release();
      await waitFor('all five handled', () => handled.length === 5);
      const until = Date.now() + 30_000;
      while ((await total()) > 0 && Date.now() < until) await sleep(100);
      assert.equal(await total(), 0, 'nothing left once handled (and committed)');
    });

    it('a group resumes after its last handled record: handled records are committed', async () => {
      const { topic, group } = await fresh();
      const first: number[] = [];
      const sub = await subscribe(topic, group, async (r) => void first.push((r.value as { i: number }).i));
      await queue.publish(topic, [1, 2].map((i) => ({ key: 'k', value: { i } })));
      await waitFor('the first two records', () => first.length >= 2);
      await sub.stop();
      await queue.publish(topic, [{ key: 'k', value: { i: 3 } }]);
      const second: number[] = [];
      await subscribe(topic, group, async (r) => void second.push((r.value as { i: number }).i));
      await waitFor('the third record', () => second.length >= 1);
      await sleep(300);
      assert.deepEqual(first, [1, 2]);
      assert.deepEqual(second, [3]);
    });

    it(
      'a record whose handler never finished is delivered again to the group’s next consumer',
      { skip: durable ? false : `${name}: in-flight records last as long as the process (see its doc comment)` },
      async () => {
        const { topic, group } = await fresh();
        let stuck = false;
        const sub = await subscribe(topic, group, async (r) => {
          if ((r.value as { i: number }).i === 1) {
            stuck = true;
            await new Promise(() => {}); // a handler that hangs: the record is never committed
          }
        });
        await queue.publish(topic, [1, 2].map((i) => ({ key: 'k', value: { i } })));
        await waitFor('the first record to be in the handler', () => stuck);
        await sub.stop();
        const again: number[] = [];
        await subscribe(topic, group, async (r) => void again.push((r.value as { i: number }).i));
        await waitFor('both records again', () => again.length >= 2);
        assert.deepEqual(again, [1, 2]);
      },
    );

    it(
      'a failing record left retrying in the background is not committed past: the next consumer gets it again',
      { skip: durable ? false : `${name}: in-flight records last as long as the process (see its doc comment)` },
      async () => {
        const { topic, group } = await fresh();
        let attempts = 0;
        const first: string[] = [];
        const sub = await subscribe(topic, group, async (r) => {
          const v = (r.value as { v: string }).v;
          if (v === 'poison') {
            attempts++;
            throw new Error('always fails');
          }
          first.push(`${r.key}:${v}`);
        }, { maxAttempts: 50 });
        await queue.publish(topic, [{ key: 'bad', value: { v: 'poison' } }, { key: 'bad', value: { v: 'next' } }]);
        await waitFor('the poison retrying', () => attempts >= 2);
        const others = Array.from({ length: 20 }, (_, k) => ({ key: `ok${k}`, value: { v: 'x' } }));
        await queue.publish(topic, others);
        await waitFor('the other keys', () => others.every((o) => first.includes(`${o.key}:x`)));
        await sub.stop();
        const again: string[] = [];
        await subscribe(topic, group, async (r) => void again.push(`${r.key}:${(r.value as { v: string }).v}`));
        await waitFor('the poison and its key\'s next record, again', () => again.includes('bad:next'));
        assert.deepEqual(again.filter((x) => x.startsWith('bad:')), ['bad:poison', 'bad:next']);
      },
    );

    it(
      'consumers in one group share the records; each record is handled by one of them',
      { skip: sharedGroups ? false : `${name}: one consumer per group per process (see its doc comment)` },
      async () => {
        const { topic, group } = await fresh();
        const KEYS = 40;
        const PER_KEY = 5;
        const byConsumer = [0, 0];
        const seen = new Map<string, number[]>();
        const handlerFor = (c: number) => async (r: QueueRecord) => {
          byConsumer[c]!++;
          const list = seen.get(r.key) ?? [];
          list.push((r.value as { i: number }).i);
          seen.set(r.key, list);
        };
        await subscribe(topic, group, handlerFor(0));
        await subscribe(topic, group, handlerFor(1));
        const records: QueueRecord[] = [];
        for (let i = 0; i < PER_KEY; i++) for (let k = 0; k < KEYS; k++) records.push({ key: `key${k}`, value: { i } });
        await queue.publish(topic, records);
        await waitFor('every record', () => byConsumer[0]! + byConsumer[1]! >= KEYS * PER_KEY);
        await sleep(500); // room for a duplicate to show up
        assert.equal(byConsumer[0]! + byConsumer[1]!, KEYS * PER_KEY, 'each record handled exactly once');
        assert.ok(byConsumer[0]! > 0 && byConsumer[1]! > 0, `both consumers got records: ${byConsumer.join(' / ')}`);
        for (let k = 0; k < KEYS; k++) assert.deepEqual(seen.get(`key${k}`), [0, 1, 2, 3, 4]);
      },
    );
  });
}
