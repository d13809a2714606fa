#!/usr/bin/env bash
# Stands in for workerd when Miniflare spawns it (MINIFLARE_WORKERD_PATH): the config Miniflare
# pipes in gets the V8 flags of SB_WORKERD_V8_FLAGS, then this process becomes workerd itself
# (same pid, same control pipe on fd 3, same signals).
set -euo pipefail
: "${SB_WORKERD_REAL:?SB_WORKERD_REAL must name the workerd binary}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Line-buffered stdout: V8 prints --trace-gc lines through stdio, which a pipe would hold back
# in 4 KB blocks (a bench phase would get the collections of the one before).
exec stdbuf -oL "$SB_WORKERD_REAL" "$@" < <(exec node "$here/add-v8-flags.mjs")
