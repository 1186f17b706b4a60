#!/usr/bin/env bash
# Compiles each src/native/*.c into dist/native/<name>.node: memory.node (malloc_trim, src/memory.ts) and
# resample.node (the PilResample TensorFlow op, src/image/pil-resize.ts). A Node-API addon needs only Node's headers
# and a C compiler, no node-gyp and no download; resample.node finds TensorFlow at run time and links against none.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$root/tools/native/node-headers.sh"
cc=${CC:-cc}
command -v "$cc" >/dev/null || { echo "no C compiler ($cc): install gcc (Debian: apt-get install gcc), or set CC" >&2; exit 1; }
mkdir -p "$root/dist/native"
# -undefined dynamic_lookup: on macOS the napi_* symbols come from the node binary at load time, as on Linux.
extra=$([[ $(uname -s) == Darwin ]] && echo "-undefined dynamic_lookup" || true)
nodelete=$([[ $(uname -s) == Darwin ]] || echo "-Wl,-z,nodelete")
for source in "$root"/src/native/*.c; do
  out=$root/dist/native/$(basename "$source" .c).node
  # Baseline instructions only, so the build runs on any x86-64 or arm64: -O3 vectorises the vertical pass, and the
  # horizontal pass chooses its SSE4.1 code at run time.
  # -z nodelete: TensorFlow keeps pointers to resample.node's kernel after the worker that loaded it has ended.
  "$cc" -O3 -Wall -Werror -shared -fPIC -fvisibility=hidden $extra $nodelete -I"$nodedir/include/node" "$source" \
    -o "$out.tmp" -ldl -lpthread
  mv "$out.tmp" "$out"
done
