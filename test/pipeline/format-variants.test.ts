// TIFF and WebP in every mode Pillow writes, decoded by libvips (sharp): pixels identical to Pillow's
// convert('RGB'); CMYK and 16-bit TIFF refused with 415 (Pillow's own conversions of them change between versions).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ServiceError } from '../../src/errors';
import { decodeImage } from '../../src/image/decode';
import { readOut } from '../../src/runtime';
import { tempDir } from '../helpers/app';
import { PYTHON } from '../helpers/cache';
import { tf } from '../helpers/runtime';
import { IMAGES } from './reference';

interface Variant {
  file: string;
  width: number;
  height: number;
  supported: boolean;
}

const dir = tempDir('format-variants');
const variants = JSON.parse(
  execFileSync(PYTHON, [join(__dirname, 'make_format_variants.py'), join(IMAGES, 'formats/rgba.png'), join(IMAGES, 'formats/icc-adobergb.jpg'), dir], { encoding: 'utf8' }),
) as Variant[];

test('every supported TIFF and WebP variant: the same pixels as Pillow, no tensor left', async () => {
  assert.ok(variants.filter((v) => v.supported).length >= 15);
  for (const { file, width, height } of variants.filter((v) => v.supported)) {
    const before = tf.memory().numTensors;
    const decoded = await decodeImage(tf, new Uint8Array(readFileSync(join(dir, file))), { maxPixels: 36_000_000, honourExif: false });
    assert.equal([decoded.width, decoded.height], [width, height], file);
    const ours = readOut<Int32Array>(tf, () => decoded.pixels.toInt());
    decoded.pixels.dispose();
    const pillow = readFileSync(join(dir, `${file}.rgb`));
    const first = ours.findIndex((v, i) => v !== pillow[i]);
    assert.is(first, -1, `${file}: sample ${first} is ${ours[first]}, Pillow's ${pillow[first]}`);
    assert.is(tf.memory().numTensors, before, `${file}: no tensor leaked`);
  }
});

test('CMYK and 16-bit TIFF: 415 naming the mode and what to send', async () => {
  for (const { file } of variants.filter((v) => !v.supported)) {
    const error = await decodeImage(tf, new Uint8Array(readFileSync(join(dir, file))), { maxPixels: 36_000_000, honourExif: false }).then(
      () => assert.unreachable(`${file} is refused`),
      (err: unknown) => err,
    );
    assert.instance(error, ServiceError, file);
    const { status, code, message } = error as ServiceError;
    assert.equal([status, code], [415, 'unsupported_format'], file);
    assert.match(message, file.startsWith('cmyk') ? /TIFF in this mode \(CMYK\)/ : /16-bit/, file);
    assert.match(message, /save it as 8-bit RGB or grayscale, or as a PNG/, file);
  }
});

test.run();
