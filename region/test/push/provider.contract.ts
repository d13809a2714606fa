import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { PushMessage, PushOutcome, PushProvider, PushRegistration } from '../../src/push/provider.ts';

/**
 * The PushProvider contract (src/push/provider.ts), for any implementation: APNs against the fake
 * APNs, FCM against the fake FCM, the recording stand-in. Every provider:
 * - delivers to a good token a content-free payload (conversation and seq only) unless the message
 *   carries a preview, which then travels;
 * - refuses, without sending, a message past its expireAt or too large (`bad_message`);
 * - answers every row of push.md's table that its service has with that row's outcome class,
 *   never throwing, and passes an APNs 410's timestamp through as `at`;
 * - reports health `ok`, `misconfigured` after a `config` outcome, `ok` again once delivering.
 */

export type OutcomeKind = PushOutcome['kind'];
export const OUTCOME_KINDS: readonly OutcomeKind[] = ['delivered', 'token_dead', 'retry_device', 'retry_provider', 'config', 'bad_message'];

/** One way the remote service answers, and the outcome the provider must make of it. */
export interface OutcomeRow {
  name: string;
  /** Sets the remote up (a switch on the fake); `reset` undoes it after the test. */
  arrange?: () => void;
  reg: () => PushRegistration;
  expect: { kind: OutcomeKind; at?: number; afterMsAtLeast?: number; afterMs?: number; reason?: RegExp };
}

/** What the remote received for a registration, as it saw it. */
export interface Received {
  contentFree: boolean;
  /** The payload as text (APNs' body, FCM's message JSON). */
  raw: string;
}

export interface ProviderHarness {
  provider: PushProvider;
  /** A registration the remote delivers to: a fresh token on every call. */
  goodReg(): PushRegistration;
  received(reg: PushRegistration): Received[];
  /** The table rows this provider's remote can be made to answer. */
  rows: OutcomeRow[];
  /** Classes push.md's table has no row for with this service (FCM: retry_device), with why. */
  notInTable: Partial<Record<OutcomeKind, string>>;
  /** Puts the remote back to normal. */
  reset(): void;
  close(): Promise<void>;
}

let msgSeq = 0;
export function message(over: Partial<PushMessage> = {}): PushMessage {
  const n = ++msgSeq;
  return { id: `conv-1:${n}:u`, conv: 'conv-1', seq: n, expireAt: Date.now() + 3600_000, collapseId: 'conv-1', ...over };
}

function assertOutcome(got: PushOutcome, want: OutcomeRow['expect'], what: string): void {
  assert.equal(got.kind, want.kind, `${what}: ${JSON.stringify(got)}`);
  if (want.at !== undefined) assert.equal((got as { at?: number }).at, want.at, `${what}: at`);
  const afterMs = (got as { afterMs?: number }).afterMs;
  if (want.afterMs !== undefined) assert.equal(afterMs, want.afterMs, `${what}: afterMs`);
  if (want.afterMsAtLeast !== undefined) assert.ok(afterMs !== undefined && afterMs >= want.afterMsAtLeast, `${what}: afterMs ${afterMs} ≥ ${want.afterMsAtLeast}`);
  if (want.reason) assert.match((got as { reason?: string }).reason ?? '', want.reason, `${what}: reason`);
}

export function providerContract(name: string, make: () => Promise<ProviderHarness>): void {
  describe(`push provider contract: ${name}`, () => {
    let h: ProviderHarness;
    before(async () => {
      h = await make();
    });
    afterEach(() => h.reset());
    after(async () => {
      await h.close();
    });

    it('delivers a content-free notification to a good token: conversation and seq, no text', async () => {
      assert.deepEqual(h.provider.health(), { status: 'ok' }, 'a new provider is ok');
      const reg = h.goodReg();
      const msg = message();
      const out = await h.provider.send(reg, msg);
      assert.equal(out.kind, 'delivered', JSON.stringify(out));
      const got = h.received(reg);
      assert.equal(got.length, 1);
      assert.equal(got[0]!.contentFree, true, got[0]!.raw);
      assert.ok(got[0]!.raw.includes(msg.conv) && got[0]!.raw.includes(String(msg.seq)), got[0]!.raw);
    });

    it('sends the preview (sender and text) only when the message carries one', async () => {
      const reg = h.goodReg();
      const text = `lunch at ${Math.random().toString(36).slice(2)}?`;
      assert.equal((await h.provider.send(reg, message({ preview: { from: 'alice', text } }))).kind, 'delivered');
      assert.equal((await h.provider.send(reg, message())).kind, 'delivered');
      const [withPreview, without] = h.received(reg);
      assert.equal(withPreview!.contentFree, false);
      assert.ok(withPreview!.raw.includes(text) && withPreview!.raw.includes('alice'), withPreview!.raw);
      assert.equal(without!.contentFree, true);
      assert.ok(!without!.raw.includes(text) && !without!.raw.includes('alice'), without!.raw);
    });

    it('refuses a message past its expireAt as bad_message, sending nothing', async () => {
      const reg = h.goodReg();
      assertOutcome(await h.provider.send(reg, message({ expireAt: Date.now() - 1 })), { kind: 'bad_message', reason: /expired/ }, 'expired');
      assert.equal(h.received(reg).length, 0);
    });

    it('refuses a payload over 4096 bytes as bad_message, sending nothing', async () => {
      const reg = h.goodReg();
      const out = await h.provider.send(reg, message({ preview: { from: 'alice', text: 'x'.repeat(4200) } }));
      assertOutcome(out, { kind: 'bad_message', reason: /too ?large|too big/i }, 'oversize');
      assert.equal(h.received(reg).length, 0);
    });

    it('has a row for every outcome class of push.md\'s table for its service', (t) => {
      if (h.rows.length === 0) return t.skip(`${name} has no remote service: it answers delivered or bad_message only (tests above)`);
      const covered = new Set<OutcomeKind>(['delivered', ...h.rows.map((r) => r.expect.kind)]);
      for (const kind of OUTCOME_KINDS) {
        if (kind in h.notInTable) assert.ok(!covered.has(kind), `${kind} is declared not in the table but has a row`);
        else assert.ok(covered.has(kind), `no row for ${kind}`);
      }
    });

    describe('the outcome table', () => {
      it('rows', async (t) => {
        if (h.rows.length === 0) return t.skip(`${name} has no remote service`);
        for (const row of h.rows) {
          await t.test(row.name, async () => {
            try {
              row.arrange?.();
              const reg = row.reg();
              assertOutcome(await h.provider.send(reg, message()), row.expect, row.name);
              if (row.expect.kind !== 'delivered') assert.equal(h.received(reg).length, 0, 'the remote accepted nothing');
            } finally {
              h.reset();
            }
          });
        }
      });
    });

    it('health: ok, misconfigured after a config outcome, ok again once a send is delivered', async () => {
      assert.equal((await h.provider.send(h.goodReg(), message())).kind, 'delivered');
      assert.equal(h.provider.health().status, 'ok');
      const row = h.rows.find((r) => r.expect.kind === 'config');
      if (row) {
        row.arrange?.();
        assert.equal((await h.provider.send(row.reg(), message())).kind, 'config');
        const health = h.provider.health();
        assert.equal(health.status, 'misconfigured');
        assert.ok(health.detail, 'says why');
        h.reset();
      }
      assert.equal((await h.provider.send(h.goodReg(), message())).kind, 'delivered');
      assert.equal(h.provider.health().status, 'ok');
    });

    it('answers many concurrent sends, each with its own outcome, never throwing', async () => {
      const plain = h.rows.filter((r) => !r.arrange);
      const jobs = Array.from({ length: 60 }, (_, i) => {
        const row = i % 3 === 0 || plain.length === 0 ? null : plain[i % plain.length]!;
        const reg = row ? row.reg() : h.goodReg();
        return { row, reg, out: h.provider.send(reg, message()) };
      });
      for (const j of jobs) assertOutcome(await j.out, j.row ? j.row.expect : { kind: 'delivered' }, j.row?.name ?? 'good token');
    });
  });
}
