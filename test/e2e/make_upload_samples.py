"""Writes small and large images in every format the service reads, for test/e2e/uploads.test.ts.

Per format: two different small pictures (seeded noise, and a solid colour that differs per format) each under
4 KiB, so that Node keeps their upload in its shared buffer pool, and one large picture well over it. Beside each
file, `<name>.twin.png` holds the pixels Pillow decodes from it (Image.open -> convert('RGB')), so a lossless
format's answer can be compared with the same pixels sent as PNG.

Usage: make_upload_samples.py OUT_DIR   (prints JSON {"samples": [{"file", "twin", "format", "content", "lossless"}]})
"""
import json
import os
import sys

import numpy as np
from PIL import Image

# format name -> (extension, Pillow save arguments, lossless); the small sizes keep every file under 4 KiB.
FORMATS = {
    'jpeg': ('jpg', {'format': 'JPEG', 'quality': 90}, False),
    'png': ('png', {'format': 'PNG'}, True),
    'gif': ('gif', {'format': 'GIF'}, True),
    'bmp': ('bmp', {'format': 'BMP'}, True),
    'tiff': ('tiff', {'format': 'TIFF'}, True),
    'webp': ('webp', {'format': 'WEBP', 'quality': 80}, False),
    'webp-lossless': ('webp', {'format': 'WEBP', 'lossless': True}, True),
}
SMALL = (32, 32)
LARGE = (320, 240)


def noise(size, seed):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), 'RGB')


def large(seed):
    """Smooth colour gradients with some noise: a photo-like picture whose files are tens of KiB."""
    w, h = LARGE
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    rgb = np.stack([128 + 100 * np.sin(x / 23 + c) * np.cos(y / 17 - c) for c in (0.0, 1.3, 2.6)], axis=-1)
    rgb += rng.normal(0, 12, rgb.shape)
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), 'RGB')


def main() -> None:
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    samples = []
    for i, (fmt, (ext, save_args, lossless)) in enumerate(FORMATS.items()):
        pictures = {
            'noise': noise(SMALL, 1000 + i),
            'solid': Image.new('RGB', SMALL, (40 + 30 * i, 200 - 25 * i, (90 + 70 * i) % 256)),
            'large': large(2000 + i),
        }
        for kind, picture in pictures.items():
            if fmt == 'gif':
                picture = picture.quantize(256)
            path = os.path.join(out, f'{fmt}-{kind}.{ext}')
            picture.save(path, **save_args)
            twin = f'{path}.twin.png'
            with Image.open(path) as decoded:
                decoded.convert('RGB').save(twin, format='PNG')
            samples.append({'file': path, 'twin': twin, 'format': fmt.split('-')[0], 'content': f'{fmt}-{kind}',
                            'kind': kind, 'lossless': lossless})
    print(json.dumps({'samples': samples}))


if __name__ == '__main__':
    main()
