#!/usr/bin/env bash
# Builds the tfjs-node (cpu) or tfjs-node-gpu (gpu) native addon against libtensorflow taken from a pinned PyPI wheel.
#
# tfjs-node's own installer downloads libtensorflow 2.9.1 and a prebuilt addon from Google's storage; this replaces
# that download: the wheel ships the same C API in tensorflow/libtensorflow_cc.so.2 plus the C headers.
# Idempotent: a second run with the same pins only checks the marker file and exits.
set -euo pipefail

usage="usage: tools/native/setup-binding.sh cpu|gpu   (env: TF_SOURCE=pypi|npm, PYTHON, NODEDIR, NODE_GYP)"
[[ $# -eq 1 ]] || { echo "$usage" >&2; exit 2; }

TF_VERSION=2.21.0
# The libraries inside do not depend on Python; the tag only names one fixed file to pin.
WHEEL_TAG=cp311-cp311-manylinux_2_27_x86_64
case "$1" in
  cpu) pkg=@tensorflow/tfjs-node; project=tensorflow-cpu
       sha256=2b847d217b02ee7731ed91431daf3250daa0196c3c94614d23be27232e6e5b6c ;;
  gpu) pkg=@tensorflow/tfjs-node-gpu; project=tensorflow
       sha256=9056fbc9ba04235810b71ae6cbd958a196e8804fb53bbcffbf3e23b56155f124 ;;
  *) echo "unknown variant '$1'; $usage" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pkg_dir=$root/node_modules/$pkg
# Concurrent runs (parallel `make test`s) would swap deps/ under each other: one at a time per package.
mkdir -p "$root/.cache/native"
exec 9>"$root/.cache/native/setup-$1.lock"
flock 9
[[ -f $pkg_dir/package.json ]] || { echo "$pkg is not installed: run 'make setup' (it runs npm ci first)" >&2; exit 1; }
cd "$root"
# Where tfjs-node's index.js will look for the addon (node-pre-gyp's module_path for this Node's N-API version).
addon=$(node -p "require('@mapbox/node-pre-gyp').find(require.resolve('$pkg/package.json'))")
marker=$pkg_dir/deps/provisioned-from
# The patch script's hash goes into the marker, so that a change to it rebuilds the addon.
patches="tools/native/patch_binding.py $(sha256sum "$root/tools/native/patch_binding.py" | cut -c1-16)"

# Fails unless the package loads on the native backend; prints the libtensorflow version it reports.
loaded_version() {
  TF_CPP_MIN_LOG_LEVEL=2 node -e "
    const tf = require('$pkg');
    if (tf.getBackend() !== 'tensorflow') throw new Error('backend is ' + tf.getBackend());
    process.stdout.write(tf.backend().binding.TF_Version);"
}

# Patches the binding's source (tools/native/patch_binding.py) and compiles the addon against deps/ with npm's bundled
# node-gyp and Node's own headers, so nothing is downloaded.
build_addon() {
  "${PYTHON:-python3}" "$root/tools/native/patch_binding.py" "$pkg_dir"
  source "$root/tools/native/node-headers.sh"
  local node_gyp=${NODE_GYP:-$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js}
  [[ -f $node_gyp ]] || { echo "node-gyp not found at $node_gyp (npm bundles it); set NODE_GYP to its bin/node-gyp.js" >&2; exit 1; }
  echo "$pkg: building the addon with node-gyp (nodedir=$nodedir)"
  (cd "$pkg_dir" && npm_config_node_gyp=$node_gyp "$root/node_modules/.bin/node-pre-gyp" install \
    --build-from-source --nodedir="$nodedir" --loglevel=warn)
  rm -rf "$pkg_dir/build"
}

case "${TF_SOURCE:-pypi}" in
  pypi) ;;
  npm)
    # tfjs-node's own installer: libtensorflow 2.9.1 from Google's storage (needs that access). Its prebuilt addon has
    # the race patch_binding.py fixes, so the addon is then compiled here from the patched source.
    want="tfjs-node download, patched: $patches"
    if [[ -f $addon && -f $marker && "$(cat "$marker")" == "$want" ]]; then
      echo "$pkg: native addon already built against tfjs-node's download"
      exit 0
    fi
    rm -rf "$pkg_dir/deps" "$pkg_dir/lib"
    (cd "$pkg_dir" && PATH=$root/node_modules/.bin:$PATH node scripts/install.js "$1" download)
    build_addon
    echo "$want" > "$marker"
    echo "$pkg: ready (tfjs-node's download, TensorFlow $(loaded_version))"
    exit 0 ;;
  *) echo "TF_SOURCE must be pypi (default: build from the PyPI wheel) or npm (tfjs-node's own download)," \
          "got '$TF_SOURCE'" >&2; exit 2 ;;
esac

if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
  echo "the PyPI wheel route is built for Linux x86_64 only (this is $(uname -s)-$(uname -m));" \
       "with access to Google's storage use TF_SOURCE=npm (tfjs-node's own download)" >&2
  exit 1
fi

cache=$root/.cache/native
wheel=$cache/${project//-/_}-$TF_VERSION-$WHEEL_TAG.whl
want="$project $TF_VERSION $sha256, patched: $patches"

if [[ -f $addon && -f $marker && "$(cat "$marker")" == "$want" ]]; then
  echo "$pkg: native addon already built against $project $TF_VERSION"
  exit 0
fi

if [[ ! -f $wheel ]] || ! echo "$sha256  $wheel" | sha256sum --check --status; then
  echo "$pkg: fetching $project==$TF_VERSION wheel with pip"
  tmp=$(mktemp -d "$cache/download.XXXXXX")
  # --no-cache-dir: .cache/native keeps the one copy.
  "${PYTHON:-python3}" -m pip download --quiet --no-cache-dir --no-deps --only-binary=:all: --implementation cp \
    --python-version 3.11 --platform manylinux_2_27_x86_64 --dest "$tmp" "$project==$TF_VERSION"
  if ! echo "$sha256  $tmp/$(basename "$wheel")" | sha256sum --check --status; then
    echo "$project $TF_VERSION wheel does not match the pinned sha256 $sha256; refusing to use it" >&2
    rm -rf "$tmp"; exit 1
  fi
  mv "$tmp/$(basename "$wheel")" "$wheel"
  rm -rf "$tmp"
fi

echo "$pkg: unpacking libtensorflow and C headers into deps/"
staging=$(mktemp -d "$pkg_dir/deps.XXXXXX")
chmod 755 "$staging"
# The headers the binding's sources pull in (checked with g++ -M against the wheel's tensorflow/include).
# Python's zipfile rather than unzip, which a fresh Debian lacks.
"${PYTHON:-python3}" - "$wheel" "$staging/wheel" <<'PY'
import fnmatch, sys, zipfile
wanted = ['tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2',
          'tensorflow/include/tensorflow/c/*', 'tensorflow/include/tensorflow/core/platform/ctstring*',
          'tensorflow/include/tsl/platform/ctstring*', 'tensorflow/include/xla/tsl/c/*']
with zipfile.ZipFile(sys.argv[1]) as wheel:
    names = [n for n in wheel.namelist() if any(fnmatch.fnmatch(n, w) for w in wanted)]
    if not any(n.endswith('libtensorflow_cc.so.2') for n in names):
        sys.exit(f'{sys.argv[1]} has no tensorflow/libtensorflow_cc.so.2')
    wheel.extractall(sys.argv[2], names)
PY
mkdir -p "$staging/lib"
mv "$staging/wheel/tensorflow/include" "$staging/include"
mv "$staging/wheel/tensorflow/"libtensorflow_*.so.2 "$staging/lib/"
rm -rf "$staging/wheel"
# binding.gyp links -ltensorflow -ltensorflow_framework; the addon then records the sonames (libtensorflow_cc.so.2,
# libtensorflow_framework.so.2) and finds them through its rpath $ORIGIN/../../deps/lib.
ln -s libtensorflow_cc.so.2 "$staging/lib/libtensorflow.so"
ln -s libtensorflow_framework.so.2 "$staging/lib/libtensorflow_framework.so"
# tfjs-node's scripts/install.js skips its download (and keeps deps/) when this file exists, so a later
# 'npm rebuild' builds against these libraries instead of wiping them.
ln -s libtensorflow_cc.so.2 "$staging/lib/libtensorflow.so.2.9.1"
rm -rf "$pkg_dir/deps"
mv "$staging" "$pkg_dir/deps"

build_addon

loaded=$(loaded_version)
if [[ $loaded != "$TF_VERSION" ]]; then
  echo "$pkg: the built addon reports TensorFlow '$loaded', expected '$TF_VERSION'" >&2
  exit 1
fi
echo "$want" > "$marker"
echo "$pkg: ready (backend tensorflow, TensorFlow $TF_VERSION)"
