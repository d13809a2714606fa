/**
 * `npm run bench:e2e`: what end-to-end encryption costs a device, with the SDK's MLS layer
 * (`@switchboard/protocol/mls`, ts-mls pinned, suite 1 on Node's WebCrypto), per group size in
 * BENCH_E2E_SIZES (default 10,100,1000 members, one device each):
 * - the group is built by its creator in one commit adding every other member (not scored: the
 *   setup, printed for reference), and one member joins from the Welcome;
 * - encrypt and decrypt of one application message (BENCH_E2E_MESSAGES, default 200, of
 *   BENCH_E2E_BODY bytes, default 200), p50/p99, beside a bare AES-128-GCM encrypt/decrypt of the
 *   same body with WebCrypto in the same run (the baseline: what the cipher alone costs);
 * - adding one member: commit time and size (commit, Welcome, GroupInfo), applying it at another
 *   member; removing one member: the same.
 * Writes .bench/e2e.json (BENCH_OUT); progress on stderr; Ctrl-C stops after the current step and
 * writes what was measured, with `interrupted: true`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MlsGroup, TrustOnFirstUse, certifyDevice, newIdentityKey, newKeyPackage, newSignatureKey, type DeviceKeyPackage } from '@switchboard/protocol/mls';
import { ROOT } from '../lib/processes.ts';
import { num } from './env-number.ts';
import { dist, type Dist } from './load.ts';

const SIZES = (process.env.BENCH_E2E_SIZES?.trim() || '10,100,1000').split(',').map(Number);
if (!SIZES.every((n) => Number.isInteger(n) && n >= 3 && n <= 5000)) {
  console.error('BENCH_E2E_SIZES: expected comma-separated integers in 3..5000');
  process.exit(2);
}
const MESSAGES = num('BENCH_E2E_MESSAGES', 200, 10, 100_000);
const BODY = num('BENCH_E2E_BODY', 200, 1, 60_000);
const OUT = path.resolve(ROOT, process.env.BENCH_OUT || '.bench/e2e.json');

const progress = (m: string) => process.stderr.write(`bench:e2e: ${m}\n`);
let stop = false;
process.on('SIGINT', () => ((stop = true), progress('stopping after this step …')));
process.on('SIGTERM', () => (stop = true));

interface SizeResult {
  members: number;
  setup: { keyPackagesMs: number; addAllMs: number; addAllCommitBytes: number; welcomeBytes: number; joinMs: number; stateBytes: number };
  message: { encrypt: Dist | null; decrypt: Dist | null; ciphertextBytes: number; baselineEncrypt: Dist | null; baselineDecrypt: Dist | null; p50RatioEncrypt: number | null; p50RatioDecrypt: number | null };
  addOne: { commitMs: number; commitBytes: number; welcomeBytes: number; groupInfoBytes: number; applyMs: number };
  removeOne: { commitMs: number; commitBytes: number; groupInfoBytes: number; applyMs: number };
}

const time = async <T>(fn: () => Promise<T>): Promise<[T, number]> => {
  const t0 = performance.now();
  const r = await fn();
  return [r, Math.round((performance.now() - t0) * 100) / 100];
};

async function device(user: string): Promise<DeviceKeyPackage> {
  const sig = await newSignatureKey();
  return newKeyPackage(await certifyDevice(await newIdentityKey(), user, 'd1', sig.publicKey), sig);
}

async function measure(members: number): Promise<SizeResult> {
  progress(`${members} members: making ${members} KeyPackages …`);
  const [kps, keyPackagesMs] = await time(() => Promise.all(Array.from({ length: members }, (_, i) => device(`u${i}`))));
  const trust = () => new TrustOnFirstUse();
  const creator = await MlsGroup.create(new TextEncoder().encode(`bench-${members}`), kps[0]!, trust());
  progress(`${members} members: one commit adding ${members - 1} …`);
  const [all, addAllMs] = await time(() => creator.commit({ add: kps.slice(1).map((k) => k.bytes) }));
  creator.applyCommit(all);
  const [other, joinMs] = await time(() => MlsGroup.join(all.welcome!, kps[1]!, trust()));

  progress(`${members} members: ${MESSAGES} messages of ${BODY} bytes …`);
  const body = new Uint8Array(BODY).fill(0x61);
  const enc: number[] = [];
  const decr: number[] = [];
  let ciphertextBytes = 0;
  for (let i = 0; i < MESSAGES; i++) {
    const [ct, e] = await time(() => creator.encrypt(body));
    const [, d] = await time(() => other.process(ct));
    enc.push(e);
    decr.push(d);
    ciphertextBytes = ct.length;
  }
  // Baseline: the bare cipher on the same body (a fresh key, WebCrypto AES-128-GCM).
  const key = await crypto.subtle.generateKey({ name: 'AES-GCM', length: 128 }, false, ['encrypt', 'decrypt']);
  const benc: number[] = [];
  const bdec: number[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const [ct, e] = await time(() => crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, body));
    const [, d] = await time(() => crypto.subtle.decrypt({ name: 'AES-GCM', iv }, key, ct));
    benc.push(e);
    bdec.push(d);
  }

  progress(`${members} members: add one, remove one …`);
  const newcomer = await device(`u${members}`);
  const [add, addMs] = await time(() => other.commit({ add: [newcomer.bytes] }));
  other.applyCommit(add);
  const [, addApplyMs] = await time(() => creator.process(add.commit));
  const victim = creator.leavesOf(`u${members - 1}`);
  const [rm, rmMs] = await time(() => creator.commit({ remove: victim }));
  creator.applyCommit(rm);
  const [, rmApplyMs] = await time(() => other.process(rm.commit));

  const e = dist(enc);
  const d = dist(decr);
  const be = dist(benc);
  const bd = dist(bdec);
  const ratio = (a: Dist | null, b: Dist | null) => (a && b && b.p50Ms > 0 ? Math.round((a.p50Ms / b.p50Ms) * 10) / 10 : null);
  return {
    members,
    setup: { keyPackagesMs, addAllMs, addAllCommitBytes: all.commit.length, welcomeBytes: all.welcome!.length, joinMs, stateBytes: creator.serialize().length },
    message: { encrypt: e, decrypt: d, ciphertextBytes, baselineEncrypt: be, baselineDecrypt: bd, p50RatioEncrypt: ratio(e, be), p50RatioDecrypt: ratio(d, bd) },
    addOne: { commitMs: addMs, commitBytes: add.commit.length, welcomeBytes: add.welcome!.length, groupInfoBytes: add.groupInfo.length, applyMs: addApplyMs },
    removeOne: { commitMs: rmMs, commitBytes: rm.commit.length, groupInfoBytes: rm.groupInfo.length, applyMs: rmApplyMs },
  };
}

const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;

async function main(): Promise<void> {
  const record: Record<string, unknown> = {
    at: new Date().toISOString(),
    host: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, node: process.version, loadAvg: os.loadavg().map((x) => Math.round(x * 100) / 100) },
    config: { sizes: SIZES, messages: MESSAGES, bodyBytes: BODY, suite: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', library: 'ts-mls 1.6.4' },
    results: [] as SizeResult[],
  };
  const results = record.results as SizeResult[];
  for (const n of SIZES) {
    if (stop) break;
    results.push(await measure(n));
  }
  if (stop) record.interrupted = true;
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  fs.writeFileSync(OUT, JSON.stringify(record, null, 2) + '\n');
  console.log(`\nMLS (ts-mls 1.6.4, suite 1, Node ${process.version}, ${os.cpus().length} cores): per message, ${BODY}-byte body, ms p50/p99 (× a bare AES-128-GCM at p50)`);
  const rows = [['members', 'encrypt', 'decrypt', 'ciphertext', 'add one: commit', 'size (commit+welcome)', 'apply', 'remove one: commit', 'size', 'apply', 'state']];
  for (const r of results) {
    rows.push([
      String(r.members),
      `${r.message.encrypt?.p50Ms}/${r.message.encrypt?.p99Ms} (×${r.message.p50RatioEncrypt})`,
      `${r.message.decrypt?.p50Ms}/${r.message.decrypt?.p99Ms} (×${r.message.p50RatioDecrypt})`,
      `${r.message.ciphertextBytes} B`,
      `${r.addOne.commitMs} ms`,
      `${kb(r.addOne.commitBytes)}+${kb(r.addOne.welcomeBytes)}`,
      `${r.addOne.applyMs} ms`,
      `${r.removeOne.commitMs} ms`,
      kb(r.removeOne.commitBytes),
      `${r.removeOne.applyMs} ms`,
      kb(r.setup.stateBytes),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i]!)).join('  '));
  for (const r of results) console.log(`setup at ${r.members}: ${r.members} KeyPackages ${r.setup.keyPackagesMs} ms, one commit adding all ${r.setup.addAllMs} ms (${kb(r.setup.addAllCommitBytes)}, Welcome ${kb(r.setup.welcomeBytes)}), join ${r.setup.joinMs} ms`);
  progress(`written to ${path.relative(ROOT, OUT)}${stop ? ' (interrupted)' : ''}`);
  process.exit(stop ? 130 : 0);
}

await main();
