#!/usr/bin/env bash
# The model baked into the image (Dockerfile, stage `model`). The Dockerfile copies the build context's model_tfjs/
# (when there is one) beside this script: that model is used as it is; without one, the project's demo model is
# converted here as `make convert` converts it, parity gate included.
#
# Usage: bake-model.sh deps          installs Debian's PyTorch stack when there is something to convert
#        bake-model.sh convert OUT   writes the model to OUT
set -euo pipefail
here=$(dirname "$(readlink -f "$0")")
given=$here/model.json

case ${1:-} in
  deps)
    [[ -f $given ]] && exit 0
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      python3-torch python3-torchvision python3-onnx python3-pil python3-numpy
    rm -rf /var/lib/apt/lists/* ;;
  convert)
    out=${2:?usage: bake-model.sh convert OUT}
    mkdir -p "$out"
    if [[ -f $given ]]; then
      find "$here" -mindepth 1 -maxdepth 1 -not -name "$(basename "$0")" -exec cp -R {} "$out/" \;
      echo "bake-model: the build context's model_tfjs/"
    else
      work=$(mktemp -d)
      # The parity gate runs the model as the server does, with the convolution op of dist/native/.
      tools/native/build-addons.sh
      python3 tools/demo_checkpoint.py --out "$work/best.pth"
      python3 tools/export_onnx.py --checkpoint "$work/best.pth" --arch resnet18 --image-size 64 --demo --out "$work/convert"
      npx tsx tools/onnx2tfjs/cli.ts "$work/convert/model.onnx" --export-info "$work/convert/export.json" \
        --reference "$work/convert/reference.json" --out "$out"
      rm -rf "$work"
      echo "bake-model: the untrained demo model (no model_tfjs/ in the build context)"
    fi ;;
  *) echo "usage: bake-model.sh deps | convert OUT" >&2; exit 2 ;;
esac
