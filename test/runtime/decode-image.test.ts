// The native binding's image decoders on the shared photos, pixel for pixel against Pillow (Debian's /usr/bin/python3).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IMAGES } from '../helpers/fixtures';
import { tf } from '../helpers/runtime';

const CASES = [
  { file: 'p07-robin.jpg', format: 'jpeg' },
  { file: 'formats/progressive.jpg', format: 'jpeg' },
  { file: 'formats/subsample-444.jpg', format: 'jpeg' },
  { file: 'p17-candies.png', format: 'png' },
  { file: 'formats/interlaced.png', format: 'png' },
  { file: 'formats/single.gif', format: 'gif' },
  { file: 'formats/animated.gif', format: 'gif' },
  { file: 'formats/rgb24.bmp', format: 'bmp' },
] as const;

// Every frame converted to RGB by Pillow, as base64 of the [frames, h, w, 3] uint8 bytes.
const PIL_SCRIPT = `
import base64, json, sys
from PIL import Image
out = {}
for p in sys.argv[1:]:
    im = Image.open(p)
    frames = []
    for i in range(getattr(im, 'n_frames', 1)):
        im.seek(i)
        frames.append(im.convert('RGB').tobytes())
    out[p] = {'shape': [len(frames), im.height, im.width, 3], 'rgb': base64.b64encode(b''.join(frames)).decode()}
json.dump(out, sys.stdout)
`;

interface Reference { shape: number[]; rgb: Buffer }
let pil: Map<string, Reference>;

test.before(() => {
  const files = CASES.map((c) => path.join(IMAGES, c.file));
  const py = spawnSync(process.env.PYTHON ?? '/usr/bin/python3', ['-c', PIL_SCRIPT, ...files], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  assert.is(py.status, 0, `Pillow reference failed: ${py.stderr}`);
  const parsed = JSON.parse(py.stdout) as Record<string, { shape: number[]; rgb: string }>;
  pil = new Map(CASES.map((c, i) => [c.file, { shape: parsed[files[i]].shape, rgb: Buffer.from(parsed[files[i]].rgb, 'base64') }]));
});

/** Largest absolute difference between the decoded tensor and Pillow's pixels (shapes must agree). */
function maxDiff(decoded: import('@tensorflow/tfjs-node').Tensor, ref: Reference, frames: boolean): number {
  assert.equal(decoded.shape, frames ? ref.shape : ref.shape.slice(1));
  assert.is(decoded.dtype, 'int32');
  const got = decoded.dataSync();
  let max = 0;
  for (let i = 0; i < ref.rgb.length; i++) max = Math.max(max, Math.abs(got[i] - ref.rgb[i]));
  return max;
}

for (const { file, format } of CASES) {
  test(`decodeImage reads ${format} ${file} as Pillow does`, () => {
    const before = tf.memory().numTensors;
    const bytes = readFileSync(path.join(IMAGES, file));
    // expandAnimations keeps every GIF frame: [frames, h, w, 3].
    const decoded = tf.node.decodeImage(bytes, 3, 'int32', format === 'gif');
    const diff = maxDiff(decoded, pil.get(file)!, format === 'gif');
    decoded.dispose();
    assert.is(tf.memory().numTensors, before);
    // decodeImage uses libjpeg's fast integer DCT; Pillow the accurate one (measured max 8 on these files).
    assert.ok(format === 'jpeg' ? diff <= 10 : diff === 0, `max abs diff ${diff} vs Pillow`);
  });
}

for (const { file } of CASES.filter((c) => c.format === 'jpeg')) {
  test(`decodeJpeg with INTEGER_ACCURATE is bit-exact with Pillow on ${file}`, () => {
    const bytes = readFileSync(path.join(IMAGES, file));
    const decoded = tf.node.decodeJpeg(bytes, 3, 1, true, false, 1, 'INTEGER_ACCURATE');
    const diff = maxDiff(decoded, pil.get(file)!, false);
    decoded.dispose();
    assert.is(diff, 0);
  });
}

test.run();
