#!/usr/bin/python3
"""Reference generator for the preprocessing parity tests: torchvision's PIL pipeline and PIL's bilinear resize.

Two commands, both driven by a JSON spec so the tests decide what to compare:

  pipeline SPEC.json OUT_DIR
      SPEC: {"size": [H, W], "mean": [3], "std": [3], "honour_exif": bool, "files": [path, ...]}
      For each file: Image.open -> (ImageOps.exif_transpose when honour_exif) -> convert('RGB')
      -> transforms.Resize((H, W)) -> ToTensor -> Normalize(mean, std), written as raw little-endian
      float32 [3, H, W] (NCHW).
      Writes OUT_DIR/index.json: {"size", "mean", "std", "files": [{"file", "ok", "mode", "width", "height",
      "tensor", "policy"} | {"file", "ok": false, "error"}]}.

  resize SPEC.json OUT_DIR
      SPEC: {"cases": [{"name", "input": raw uint8 file, "shape": [h, w, 3], "size": [H, W]}]}
      Writes OUT_DIR/<name>.out.u8: PIL Image.resize((W, H), BILINEAR) of each input, raw uint8 [H, W, 3].

Where PIL does something no user wants, the reference applies the service's documented policy instead
(see docs/formats.md) and names it in "policy":
  - 16-bit grayscale PNG: PIL's convert('RGB') clips mode I to 255 (a nearly white picture); the service
    keeps the high byte of each sample (v >> 8), so the reference does the same before convert('RGB').
"""

import json
import os
import sys

import numpy as np
from PIL import Image, ImageOps
from torchvision import transforms


def _open_rgb(path, honour_exif):
    """Returns (RGB image, source mode, policy or None) following PIL unless the documented policy differs."""
    with Image.open(path) as im:
        im.load()
        mode = im.mode
        if honour_exif:
            im = ImageOps.exif_transpose(im)
        if mode in ('I;16', 'I;16B', 'I'):
            high_byte = (np.asarray(im, dtype=np.int64) >> 8).astype(np.uint8)
            return Image.fromarray(high_byte, 'L').convert('RGB'), mode, '16-bit samples: high byte'
        return im.convert('RGB'), mode, None


def pipeline(spec, out_dir):
    height, width = spec['size']
    resize = transforms.Resize((height, width))
    to_tensor = transforms.ToTensor()
    normalize = transforms.Normalize(spec['mean'], spec['std'])
    entries = []
    for i, path in enumerate(spec['files']):
        try:
            rgb, mode, policy = _open_rgb(path, spec.get('honour_exif', False))
        except Exception as err:  # the tests compare which files PIL refuses, so every refusal is data
            entries.append({'file': path, 'ok': False, 'error': f'{type(err).__name__}: {err}'})
            continue
        tensor = normalize(to_tensor(resize(rgb)))
        stem = f'{i:03d}'
        tensor.numpy().astype('<f4').tofile(os.path.join(out_dir, f'{stem}.f32'))
        entries.append({'file': path, 'ok': True, 'mode': mode, 'width': rgb.width, 'height': rgb.height,
                        'tensor': f'{stem}.f32', 'policy': policy})
    index = {'size': [height, width], 'mean': spec['mean'], 'std': spec['std'], 'files': entries}
    with open(os.path.join(out_dir, 'index.json'), 'w') as f:
        json.dump(index, f, indent=1)


def resize(spec, out_dir):
    for case in spec['cases']:
        h, w, channels = case['shape']
        if channels != 3:
            raise SystemExit(f"case {case['name']}: only 3-channel inputs are supported, got {channels}")
        data = np.fromfile(case['input'], dtype=np.uint8)
        if data.size != h * w * 3:
            raise SystemExit(f"case {case['name']}: {case['input']} holds {data.size} bytes, expected {h * w * 3}")
        image = Image.fromarray(data.reshape(h, w, 3), 'RGB')
        out_h, out_w = case['size']
        out = image.resize((out_w, out_h), Image.BILINEAR)
        np.asarray(out, dtype=np.uint8).tofile(os.path.join(out_dir, f"{case['name']}.out.u8"))


def main(argv):
    commands = {'pipeline': pipeline, 'resize': resize}
    if len(argv) != 4 or argv[1] not in commands:
        raise SystemExit(f'usage: {argv[0]} pipeline|resize SPEC.json OUT_DIR')
    with open(argv[2]) as f:
        spec = json.load(f)
    os.makedirs(argv[3], exist_ok=True)
    commands[argv[1]](spec, argv[3])


if __name__ == '__main__':
    main(sys.argv)
