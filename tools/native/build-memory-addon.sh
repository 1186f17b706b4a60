#!/usr/bin/env bash
# Compiles src/native/memory.c (malloc_trim for the engine, src/memory.ts) into dist/native/memory.node: a Node-API
# addon needs only Node's headers and a C compiler, no node-gyp and no download.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out=$root/dist/native/memory.node
source "$root/tools/native/node-headers.sh"
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "no C compiler ($cc): install gcc (Debian: apt-get install gcc), or set CC" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
# -undefined dynamic_lookup: on macOS the napi_* symbols come from the node binary at load time, as on Linux.
extra=$([[ $(uname -s) == Darwin ]] && echo "-undefined dynamic_lookup" || true)
"$cc" -O2 -Wall -Werror -shared -fPIC -fvisibility=hidden $extra -I"$nodedir/include/node" \
  "$root/src/native/memory.c" -o "$out.tmp"
mv "$out.tmp" "$out"
