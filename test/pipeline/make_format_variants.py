"""Writes TIFF and WebP variants of one picture with Pillow, and what Pillow's convert('RGB') makes of each.

Usage: make_format_variants.py SOURCE_PNG ICC_SOURCE_JPEG OUT_DIR
Prints a JSON list of {"file", "width", "height", "supported"}; OUT_DIR/<file>.rgb holds Pillow's RGB bytes.
"""
import json
import sys

import numpy as np
from PIL import Image

source, icc_source, out = sys.argv[1:4]
rgb = Image.open(source).convert('RGB').resize((97, 61))
rgba = Image.open(source).convert('RGBA').resize((97, 61))
rgba.putalpha(Image.linear_gradient('L').resize((97, 61)))
icc = Image.open(icc_source).info['icc_profile']
gray16 = Image.fromarray(np.asarray(rgb.convert('L')).astype(np.uint16) * 257)

# (file, image, save options, whether the service decodes it: CMYK and 16-bit are refused with 415)
variants = [
    ('rgb.tif', rgb, {}, True),
    ('rgb-lzw.tif', rgb, {'compression': 'tiff_lzw'}, True),
    ('rgb-deflate.tif', rgb, {'compression': 'tiff_adobe_deflate'}, True),
    ('rgb-jpeg.tif', rgb, {'compression': 'jpeg'}, True),
    ('rgb-packbits.tif', rgb, {'compression': 'packbits'}, True),
    ('gray.tif', rgb.convert('L'), {}, True),
    ('bilevel.tif', rgb.convert('1'), {}, True),
    ('palette.tif', rgb.convert('P'), {}, True),
    ('rgba.tif', rgba, {}, True),
    ('gray-alpha.tif', rgba.convert('LA'), {'compression': 'tiff_lzw'}, True),
    ('icc.tif', rgb, {'icc_profile': icc}, True),
    ('cmyk.tif', rgb.convert('CMYK'), {}, False),
    ('gray16.tif', gray16, {}, False),
    ('lossy.webp', rgb, {'quality': 80}, True),
    ('lossless.webp', rgb, {'lossless': True}, True),
    ('rgba-lossy.webp', rgba, {'quality': 80}, True),
    ('rgba-lossless.webp', rgba, {'lossless': True}, True),
    ('icc.webp', rgb, {'quality': 80, 'icc_profile': icc}, True),
]
listing = []
for name, image, options, supported in variants:
    path = f'{out}/{name}'
    image.save(path, **options)
    np.asarray(Image.open(path).convert('RGB')).tofile(path + '.rgb')
    listing.append({'file': name, 'width': image.width, 'height': image.height, 'supported': supported})
print(json.dumps(listing))
