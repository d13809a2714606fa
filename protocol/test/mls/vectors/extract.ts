/**
 * Regenerates the RFC 9420 (MLS) test vectors in this folder. Run by hand; CI only reads the output.
 *
 * The vectors are mlswg/mls-implementations' `test-vectors/*.json`, as vendored by LukaJCB/ts-mls
 * in its `test_vectors/` folder. We read them from a git copy of ts-mls (a clone or a bare mirror,
 * nothing is checked out) at a fixed tag, keep only what our tests run, and write one JSON file per
 * family here, in the upstream format (an array of entries) with one entry per line.
 *
 *   node --import tsx protocol/test/mls/vectors/extract.ts [--repo <ts-mls git dir>] [--ref v1.6.2]
 *
 *   --repo  default: $TS_MLS_REPO, else /work/.mirror/LukaJCB+ts-mls/repo
 *           (any `git clone https://github.com/LukaJCB/ts-mls` works too)
 *   --ref   default: v1.6.2
 *
 * What is kept (see RULES): entries whose cipher_suite is in SUITES; families without a cipher
 * suite whole (tree-math, deserialization) or their first entries (messages); the one
 * passive-client-random scenario cut to its first epochs (a prefix of a passive-client scenario is
 * itself a valid scenario: each epoch only depends on the ones before it). The point of trimming is
 * to keep the committed JSON around 1 MB. The script prints what it kept and writes manifest.json
 * (source commit, entries kept per file, sizes); README.md describes the result.
 *
 * SUITES is what ts-mls runs on plain WebCrypto with no optional peer dependency: suite 2 needs
 * @noble/curves (P-256 signatures) and suite 3 @hpke/chacha20poly1305, neither of which we install.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Cipher suites kept: 1 = MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519 (the one Switchboard uses). */
const SUITES = [1];

/** How many entries of messages.json (300 upstream, ~9 KB each, not per suite) to keep. */
const MESSAGES_KEPT = 20;
/** How many epochs of the passive-client-random scenario (200 upstream, ~1.9 MB) to keep. */
const RANDOM_EPOCHS_KEPT = 40;

type Entry = Record<string, unknown>;
type Rule = {
  /** File name in ts-mls' test_vectors/ and here. */
  file: string;
  /** 'suites': entries whose cipher_suite is in SUITES; 'all': every entry; a number: the first n. */
  keep: 'suites' | 'all' | number;
  /** Applied to each kept entry (used to cut a scenario's epochs). */
  map?: (e: Entry) => Entry;
  /** Says what `map` or a numeric `keep` left out, for the manifest. */
  trimmed?: string;
};

const RULES: Rule[] = [
  { file: 'tree-math.json', keep: 'all' },
  { file: 'deserialization.json', keep: 'all' },
  { file: 'crypto-basics.json', keep: 'suites' },
  { file: 'key-schedule.json', keep: 'suites' },
  { file: 'psk_secret.json', keep: 'suites' },
  { file: 'secret-tree.json', keep: 'suites' },
  { file: 'message-protection.json', keep: 'suites' },
  { file: 'transcript-hashes.json', keep: 'suites' },
  { file: 'welcome.json', keep: 'suites' },
  { file: 'tree-operations.json', keep: 'suites' },
  { file: 'tree-validation.json', keep: 'suites' },
  { file: 'treekem.json', keep: 'suites' },
  { file: 'passive-client-welcome.json', keep: 'suites' },
  { file: 'passive-client-handling-commit.json', keep: 'suites' },
  {
    file: 'passive-client-random.json',
    keep: 'suites',
    map: (e) => ({ ...e, epochs: (e.epochs as unknown[]).slice(0, RANDOM_EPOCHS_KEPT) }),
    trimmed: `epochs cut to the first ${RANDOM_EPOCHS_KEPT}`,
  },
  { file: 'messages.json', keep: MESSAGES_KEPT, trimmed: `first ${MESSAGES_KEPT} entries only` },
];

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const repo = arg('--repo') ?? process.env.TS_MLS_REPO ?? '/work/.mirror/LukaJCB+ts-mls/repo';
const ref = arg('--ref') ?? 'v1.6.2';
const outDir = dirname(fileURLToPath(import.meta.url));
const git = (...args: string[]) =>
  execFileSync('git', ['-C', repo, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });

const commit = git('rev-parse', `${ref}^{commit}`).trim();
const manifest = {
  source: {
    vectors: 'https://github.com/mlswg/mls-implementations (test-vectors/)',
    via: 'https://github.com/LukaJCB/ts-mls (test_vectors/)',
    ref,
    commit,
  },
  suites: SUITES,
  files: [] as { file: string; upstreamEntries: number; keptEntries: number; trimmed: string | null; bytes: number }[],
};

let total = 0;
for (const rule of RULES) {
  const upstream = JSON.parse(git('show', `${commit}:test_vectors/${rule.file}`)) as Entry[];
  let kept =
    rule.keep === 'all'
      ? upstream
      : rule.keep === 'suites'
        ? upstream.filter((e) => SUITES.includes(e.cipher_suite as number))
        : upstream.slice(0, rule.keep);
  if (rule.map) kept = kept.map(rule.map);
  if (kept.length === 0) throw new Error(`${rule.file}: nothing kept`);
  const text = '[\n' + kept.map((e) => JSON.stringify(e)).join(',\n') + '\n]\n';
  writeFileSync(join(outDir, rule.file), text);
  const bytes = Buffer.byteLength(text);
  total += bytes;
  manifest.files.push({
    file: rule.file,
    upstreamEntries: upstream.length,
    keptEntries: kept.length,
    trimmed: rule.trimmed ?? null,
    bytes,
  });
  console.log(`${rule.file.padEnd(38)} ${String(kept.length).padStart(3)}/${String(upstream.length).padEnd(4)} ${bytes} B`);
}
writeFileSync(join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
console.log(`total ${total} B (${(total / 1024 / 1024).toFixed(2)} MiB) from ${ref} (${commit})`);
