/**
 * V8 flags for workerd under Miniflare, which has no option for them: Miniflare runs
 * MINIFLARE_WORKERD_PATH instead of its workerd when set, so that points at run-workerd.sh, which
 * adds the flags to the binary config (add-v8-flags.mjs) and then execs the real workerd.
 *
 * Flags workerd sets itself after the config's win: `--noincremental-marking`, for one, cannot
 * be undone this way (src/workerd/jsg/setup.c++).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export class V8FlagsError extends Error {
  override name = 'V8FlagsError';
}

/** The workerd binary Miniflare would run (its `workerd` dependency's main export). */
export function workerdBinary(): string {
  const fromMiniflare = createRequire(createRequire(import.meta.url).resolve('miniflare'));
  return (fromMiniflare('workerd') as { default: string }).default;
}

/** Environment for a Miniflare whose workerd gets `flags` (space-separated, each starting with `--`). */
export function v8FlagsEnv(flags: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const list = flags.trim().split(/\s+/).filter(Boolean);
  if (list.length === 0) throw new V8FlagsError('no V8 flags given');
  const bad = list.find((f) => !/^--[a-z0-9][a-z0-9_-]*(=\S+)?$/i.test(f));
  if (bad !== undefined) throw new V8FlagsError(`not a V8 flag: ${JSON.stringify(bad)} (expected e.g. --trace-gc or --max-semi-space-size=4)`);
  return {
    SB_WORKERD_REAL: env.MINIFLARE_WORKERD_PATH ?? workerdBinary(),
    SB_WORKERD_V8_FLAGS: list.join(' '),
    MINIFLARE_WORKERD_PATH: path.join(HERE, 'run-workerd.sh'),
  };
}
