/**
 * Reads the binary Cap'n Proto `Config` that Miniflare pipes to workerd on stdin, sets its
 * `v8Flags` (pointer 2 of the root struct, workerd.capnp) to the space-separated flags in
 * SB_WORKERD_V8_FLAGS, and writes the message to stdout. Miniflare has no option for them.
 *
 * The list and its texts are appended to the end of segment 0: pointers are relative to their
 * own segment, so nothing already encoded moves, and only segment 0's size in the header grows.
 */
import process from 'node:process';

const V8_FLAGS_POINTER = 2;

export class ConfigPatchError extends Error {
  name = 'ConfigPatchError';
}

function fail(msg) {
  throw new ConfigPatchError(msg);
}

/** A list pointer at word `at` to `count` elements of `size` (capnp element-size code) at word `target`. */
function listPointer(at, target, size, count) {
  const offset = BigInt(target - (at + 1));
  return (offset << 2n) | 1n | (BigInt(size) << 32n) | (BigInt(count) << 35n);
}

/** `message` (a whole framed capnp message, as Miniflare writes it) with `flags` as the root Config's v8Flags. */
export function addV8Flags(message, flags) {
  if (message.length < 16) fail(`config message too short (${message.length} bytes)`);
  const segments = message.readUInt32LE(0) + 1;
  const sizes = Array.from({ length: segments }, (_, i) => message.readUInt32LE(4 + 4 * i));
  const header = Math.ceil((4 + 4 * segments) / 8) * 8;
  const body = sizes.reduce((a, b) => a + b, 0) * 8;
  if (segments > 512 || message.length < header + body || sizes[0] < 1) fail(`not a framed capnp message (${segments} segments, ${message.length} bytes)`);
  const seg0 = message.subarray(header, header + sizes[0] * 8);
  const root = seg0.readBigUInt64LE(0);
  if ((root & 3n) !== 0n) fail('config root is not a struct pointer in segment 0');
  const offset = Number(BigInt.asIntN(30, (root >> 2n) & 0x3fffffffn));
  const dataWords = Number((root >> 32n) & 0xffffn);
  const pointers = Number((root >> 48n) & 0xffffn);
  if (pointers <= V8_FLAGS_POINTER) fail(`config root has ${pointers} pointers, v8Flags is pointer ${V8_FLAGS_POINTER}`);
  const slot = 1 + offset + dataWords + V8_FLAGS_POINTER;
  if (slot >= sizes[0]) fail('config root struct lies outside segment 0');
  if (seg0.readBigUInt64LE(slot * 8) !== 0n) fail('config already sets v8Flags');

  const texts = flags.map((f) => Buffer.from(f + '\0', 'utf8'));
  const textWords = texts.map((t) => Math.ceil(t.length / 8));
  const added = Buffer.alloc((flags.length + textWords.reduce((a, b) => a + b, 0)) * 8);
  const list = sizes[0];
  let next = list + flags.length;
  texts.forEach((t, i) => {
    added.writeBigUInt64LE(listPointer(list + i, next, 2, t.length), i * 8);
    t.copy(added, (next - sizes[0]) * 8);
    next += textWords[i];
  });
  const out = Buffer.concat([message.subarray(0, header), seg0, added, message.subarray(header + sizes[0] * 8)]);
  out.writeUInt32LE(sizes[0] + added.length / 8, 4);
  out.writeBigUInt64LE(listPointer(slot, list, 6, flags.length), header + slot * 8);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const flags = (process.env.SB_WORKERD_V8_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const input = Buffer.concat(chunks);
  try {
    process.stdout.write(flags.length > 0 ? addV8Flags(input, flags) : input);
  } catch (err) {
    // workerd then reads an empty config and refuses to start; this line says why.
    process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level: 'error', svc: 'workerd-v8-flags', msg: String(err.message ?? err) }) + '\n');
    process.exit(2);
  }
}
