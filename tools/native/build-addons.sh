#!/usr/bin/env bash
# Compiles each src/native/*.c into dist/native/<name>.node: memory.node (malloc_trim, src/memory.ts), and the
# TensorFlow ops resample.node (PilResample, src/image/pil-resize.ts) and conv.node (PackedConv2D,
# src/engine/packed-conv.ts). A Node-API addon needs only Node's headers and a C compiler, no node-gyp and no
# download; the op addons find TensorFlow at run time and link against none.
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
  # Baseline instructions only, so the build runs on any x86-64 or arm64: code for newer instructions (SSE4.1 in the
  # resize, AVX2 and AVX-512 in the convolution) is chosen at run time.
  # -z nodelete: TensorFlow keeps pointers to an op's kernel after the worker that loaded it has ended.
  "$cc" -O3 -Wall -Werror -shared -fPIC -fvisibility=hidden $extra $nodelete -I"$nodedir/include/node" "$source" \
    -o "$out.tmp" -ldl -lpthread -lm
  mv "$out.tmp" "$out"
done
