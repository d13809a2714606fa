import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Miniflare } from 'miniflare';
import { GcTrace } from '../../scripts/bench/gc-trace.ts';
import { ConfigPatchError, addV8Flags } from '../../scripts/workerd/add-v8-flags.mjs';
import { V8FlagsError, v8FlagsEnv } from '../../scripts/workerd/v8-flags.ts';

/** A framed one-segment capnp message whose root struct has no data and `pointers` null pointers. */
function emptyRoot(pointers: number): Buffer {
  const buf = Buffer.alloc(8 + (1 + pointers) * 8);
  buf.writeUInt32LE(0, 0);
  buf.writeUInt32LE(1 + pointers, 4);
  buf.writeBigUInt64LE(BigInt(pointers) << 48n, 8);
  return buf;
}

/** The texts of a list-of-text pointer at byte `at` (segment 0 starts at byte 8). */
function readTexts(buf: Buffer, at: number): string[] {
  const word = (i: number) => buf.readBigUInt64LE(8 + i * 8);
  const listAt = (at - 8) / 8;
  const ptr = word(listAt);
  assert.equal(Number(ptr & 3n), 1, 'a list pointer');
  assert.equal(Number((ptr >> 32n) & 7n), 6, 'of pointers');
  const start = listAt + 1 + Number((ptr >> 2n) & 0x3fffffffn);
  return Array.from({ length: Number(ptr >> 35n) }, (_, i) => {
    const t = word(start + i);
    assert.equal(Number((t >> 32n) & 7n), 2, 'a byte list');
    const from = 8 + (start + i + 1 + Number((t >> 2n) & 0x3fffffffn)) * 8;
    const text = buf.subarray(from, from + Number(t >> 35n));
    assert.equal(text.at(-1), 0, 'NUL-terminated');
    return text.subarray(0, -1).toString('utf8');
  });
}

describe('V8 flags for workerd (scripts/workerd)', () => {
  it('writes the flags as the root struct’s pointer 2 and grows segment 0 by what it appends', () => {
    const out = addV8Flags(emptyRoot(4), ['--trace-gc', '--max-semi-space-size=4']);
    assert.equal(out.readUInt32LE(4), out.length / 8 - 1);
    assert.deepEqual(readTexts(out, 8 + 8 * (1 + 2)), ['--trace-gc', '--max-semi-space-size=4']);
    // The other pointers stay null.
    for (const p of [0, 1, 3]) assert.equal(out.readBigUInt64LE(8 + 8 * (1 + p)), 0n);
  });

  it('refuses what it cannot patch: flags set already, too few pointers, a truncated message', () => {
    const once = addV8Flags(emptyRoot(4), ['--trace-gc']);
    assert.throws(() => addV8Flags(once, ['--trace-gc']), (e: unknown) => e instanceof ConfigPatchError && /already sets v8Flags/.test(e.message));
    assert.throws(() => addV8Flags(emptyRoot(2), ['--trace-gc']), ConfigPatchError);
    assert.throws(() => addV8Flags(emptyRoot(4).subarray(0, 20), ['--trace-gc']), ConfigPatchError);
  });

  it('refuses an EDGE_V8_FLAGS value that is not a list of flags', () => {
    for (const bad of ['', 'trace-gc', '--trace-gc; rm -rf /', '--a --b c']) assert.throws(() => v8FlagsEnv(bad, {}), V8FlagsError, bad);
    assert.equal(v8FlagsEnv('  --trace-gc   --expose-gc ', {}).SB_WORKERD_V8_FLAGS, '--trace-gc --expose-gc');
  });

  const instances: Miniflare[] = [];
  after(async () => {
    await Promise.all(instances.map((mf) => mf.dispose()));
  });

  /** A Worker answering `typeof gc` after calling it if it can; `lines` gets workerd's stdout. */
  async function worker(env: Record<string, string>, lines: string[]): Promise<string> {
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      const mf = new Miniflare({
        modules: true,
        script: 'export default { fetch() { globalThis.gc?.(); return new Response(typeof globalThis.gc); } }',
        compatibilityDate: '2026-04-01',
        handleRuntimeStdio(stdout, stderr) {
          for (const s of [stdout, stderr]) s.on('data', (chunk: Buffer) => lines.push(...String(chunk).split('\n')));
        },
      });
      instances.push(mf);
      await mf.ready;
      return await (await mf.dispatchFetch('http://localhost/')).text();
    } finally {
      for (const k of Object.keys(env)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  }

  it('workerd runs with the flags, and its --trace-gc lines are summed per isolate', async () => {
    const plain: string[] = [];
    assert.equal(await worker({}, plain), 'undefined');
    const lines: string[] = [];
    assert.equal(await worker(v8FlagsEnv('--expose-gc --trace-gc', {}), lines), 'function');
    const gc = new GcTrace();
    // The line comes through a pipe: a moment after the answer.
    for (let i = 0; i < 50 && !lines.some((l) => l.includes('Mark-Compact')); i++) await new Promise((r) => setTimeout(r, 100));
    const seen = lines.filter((l) => gc.line(l)).length;
    assert.ok(seen > 0, `a trace-gc line in ${JSON.stringify(lines.slice(-20))}`);
    const summary = gc.take();
    assert.ok(summary && summary.markCompact.n >= 1, JSON.stringify(summary));
    assert.equal(gc.take(), null, 'take() starts over');
  });

  it('reports the isolate that paused longest', () => {
    const gc = new GcTrace();
    const lines = [
      '[1:0xaa]   10 ms: Scavenge 2.4 (3.6) -> 1.9 (3.1) MB, pooled: 1.0 MB, 3.50 / 0.00 ms (average mu = 1.000, current mu = 1.000) allocation failure; ',
      '[1:0xbb]   11 ms: Scavenge 2.4 (3.6) -> 1.9 (3.1) MB, pooled: 1.0 MB, 1.00 / 0.00 ms (average mu = 1.000, current mu = 1.000) allocation failure; ',
      '[1:0xaa]   12 ms: Mark-Compact 38.4 (53.8) -> 4.2 (53.1) MB, pooled: 0.8 MB, 74.42 / 0.00 ms (average mu = 0.993, current mu = 0.991) allocation failure; GC in old space requested',
      '[1:0xaa]   13 ms: Scavenge 9.1 (11.3) -> 6.5 (11.8) MB, pooled: 0.0 MB, 10.37 / 0.00 ms (average mu = 1.000, current mu = 1.000) allocation failure; ',
      '{"level":"info","msg":"not a trace line"}',
    ];
    assert.deepEqual(lines.map((l) => gc.line(l)), [true, true, true, true, false]);
    assert.deepEqual(gc.take(), {
      scavenge: { n: 2, totalMs: 13.9, maxMs: 10.4 },
      markCompact: { n: 1, totalMs: 74.4, maxMs: 74.4 },
      pausedMs: 88.3,
      liveMbAfterLastFull: 4.2,
    });
  });
});
