#!/usr/bin/env bash
# Builds the tfjs-node (cpu) or tfjs-node-gpu (gpu) native addon against libtensorflow taken from a pinned PyPI wheel.
#
# tfjs-node's own installer downloads libtensorflow 2.9.1 and a prebuilt addon from Google's storage; this replaces
# that download: the wheel ships the same C API in tensorflow/libtensorflow_cc.so.2 plus the C headers.
# Idempotent: a second run with the same pins only checks the marker file and exits.
set -euo pipefail

usage="usage: tools/native/setup-binding.sh cpu|gpu   (env: PYTHON, NODEDIR, NODE_GYP)"
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

if [[ "$(uname -s)-$(uname -m)" != Linux-x86_64 ]]; then
  echo "the PyPI wheel route is built for Linux x86_64 only (this is $(uname -s)-$(uname -m));" \
       "with internet access run 'npm rebuild $pkg' and let tfjs-node download its own libtensorflow" >&2
  exit 1
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
pkg_dir=$root/node_modules/$pkg
cache=$root/.cache/native
wheel=$cache/${project//-/_}-$TF_VERSION-$WHEEL_TAG.whl
marker=$pkg_dir/deps/provisioned-from
want="$project $TF_VERSION $sha256"

[[ -f $pkg_dir/package.json ]] || { echo "$pkg is not installed: run 'make setup' (it runs npm ci first)" >&2; exit 1; }
cd "$root"
# Where tfjs-node's index.js will look for the addon (node-pre-gyp's module_path for this Node's N-API version).
addon=$(node -p "require('@mapbox/node-pre-gyp').find(require.resolve('$pkg/package.json'))")

if [[ -f $addon && -f $marker && "$(cat "$marker")" == "$want" ]]; then
  echo "$pkg: native addon already built against $project $TF_VERSION"
  exit 0
fi

mkdir -p "$cache"
if [[ ! -f $wheel ]] || ! echo "$sha256  $wheel" | sha256sum --check --status; then
  echo "$pkg: fetching $project==$TF_VERSION wheel with pip"
  tmp=$(mktemp -d "$cache/download.XXXXXX")
  "${PYTHON:-python3}" -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
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
# The headers the binding's sources pull in (checked with g++ -M against the wheel's tensorflow/include).
unzip -q "$wheel" -d "$staging/wheel" 'tensorflow/libtensorflow_cc.so.2' 'tensorflow/libtensorflow_framework.so.2' \
  'tensorflow/include/tensorflow/c/*' 'tensorflow/include/tensorflow/core/platform/ctstring*' \
  'tensorflow/include/tsl/platform/ctstring*' 'tensorflow/include/xla/tsl/c/*'
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

nodedir=${NODEDIR:-$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")}
if [[ ! -f $nodedir/include/node/node_api.h ]]; then
  echo "Node's headers are not in $nodedir/include/node; set NODEDIR to the prefix that holds include/node" \
       "(node-gyp must not download them)" >&2
  exit 1
fi
node_gyp=${NODE_GYP:-$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js}
[[ -f $node_gyp ]] || { echo "node-gyp not found at $node_gyp (npm bundles it); set NODE_GYP to its bin/node-gyp.js" >&2; exit 1; }

echo "$pkg: building the addon with node-gyp (nodedir=$nodedir)"
(cd "$pkg_dir" && npm_config_node_gyp=$node_gyp "$root/node_modules/.bin/node-pre-gyp" install \
  --build-from-source --nodedir="$nodedir" --loglevel=warn)
rm -rf "$pkg_dir/build"

loaded=$(TF_CPP_MIN_LOG_LEVEL=2 node -e "
  const tf = require('$pkg');
  process.stdout.write(tf.getBackend() + ' ' + tf.backend().binding.TF_Version);")
if [[ $loaded != "tensorflow $TF_VERSION" ]]; then
  echo "$pkg: the built addon reports '$loaded', expected 'tensorflow $TF_VERSION'" >&2
  exit 1
fi
echo "$want" > "$marker"
echo "$pkg: ready (backend tensorflow, TensorFlow $TF_VERSION)"
