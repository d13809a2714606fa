import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { PushGate } from '../../src/push/gate.ts';
import { runId } from '../engines.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The PushGate contract (src/push/gate.ts) for any implementation; `make` returns a fresh one. */
export function pushGateContract(name: string, make: () => Promise<PushGate>): void {
  describe(`push gate contract: ${name}`, () => {
    let gate: PushGate;
    const run = runId();
    let n = 0;
    const user = () => `g${run}_${++n}`;

    before(async () => {
      gate = await make();
    });
    after(async () => {
      await gate.close();
    });

    it('lets one wake through per device while it is outstanding, whatever the number of callers', async () => {
      const u = user();
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => gate.claim(u, 'phone', 60_000, `intent-${i}`)));
      assert.equal(results.filter((r) => r === 'claimed').length, 1, 'one of 20 concurrent claims');
      assert.equal(results.filter((r) => r === 'held').length, 19);
      const winner = `intent-${results.indexOf('claimed')}`;
      assert.equal(await gate.claim(u, 'phone', 60_000, winner), 'claimed', 'its owner again (handled again after a crash)');
      assert.equal(await gate.claim(u, 'phone', 60_000, 'another'), 'held');
      assert.equal(await gate.claim(u, 'tablet', 60_000, 'x'), 'claimed', 'devices are apart');
      assert.equal(await gate.claim(user(), 'phone', 60_000, 'x'), 'claimed', 'users are apart');
    });

    it('answers `sent` to the owner of a wake it marked sent, `held` to others, and keeps the hold', async () => {
      const u = user();
      assert.equal(await gate.claim(u, 'phone', 300, 'a'), 'claimed');
      await gate.sent(u, 'phone', 'someone-else');
      assert.equal(await gate.claim(u, 'phone', 300, 'a'), 'claimed', 'another owner cannot mark it');
      await gate.sent(u, 'phone', 'a');
      assert.equal(await gate.claim(u, 'phone', 300, 'a'), 'sent', 'handled again: not sent twice');
      assert.equal(await gate.claim(u, 'phone', 300, 'b'), 'held');
      await sleep(400);
      assert.equal(await gate.claim(u, 'phone', 300, 'b'), 'claimed', 'the hold kept its expiry');
      await gate.sent(u, 'tablet', 'x');
      assert.equal(await gate.claim(u, 'tablet', 300, 'x'), 'claimed', 'marking a wake nobody holds creates none');
    });

    it('lets the next wake through once the device came online, or the hold passed', async () => {
      const u = user();
      assert.equal(await gate.claim(u, 'phone', 60_000, 'a'), 'claimed');
      await gate.release(u, 'phone');
      assert.equal(await gate.claim(u, 'phone', 150, 'b'), 'claimed', 'after release');
      assert.equal(await gate.claim(u, 'phone', 150, 'c'), 'held');
      await sleep(250);
      assert.equal(await gate.claim(u, 'phone', 150, 'c'), 'claimed', 'after the hold');
    });

    it('takes a burst, then refuses with the time until the next token, and refills at the rate', async () => {
      const u = user();
      const rate = { perHour: 36_000, burst: 3 }; // one token per 100 ms
      const first = await Promise.all(Array.from({ length: 5 }, () => gate.take(u, 'phone', rate)));
      assert.equal(first.filter((t) => t.ok).length, 3, 'the burst, atomically');
      const refused = first.find((t) => !t.ok) as { ok: false; retryAfterMs: number };
      assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 100, `retry after ${refused.retryAfterMs} ms`);
      await sleep(250);
      assert.equal((await gate.take(u, 'phone', rate)).ok, true, 'refilled');
      assert.equal((await gate.take(u, 'other', rate)).ok, true, 'per device');
    });
  });
}
