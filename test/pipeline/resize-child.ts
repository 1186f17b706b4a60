// Run by pil-resize.test.ts in a process of its own (RESAMPLE_KERNELS is read once per process): prints the horizontal
// pass the op runs and a sha256 of every case's output bytes, one JSON line.
import { createHash } from 'node:crypto';
import { uint8Image } from '../../src/image/decode';
import { resizeBilinearPil, resizeWeights } from '../../src/image/pil-resize';
import { loadRuntime, readOut } from '../../src/runtime';
import { OP_ADDONS } from '../../src/tf-ops';
import { CASES } from './resize-cases';

const { tf } = loadRuntime({ device: 'cpu' });
const hashes = CASES.map((c) => {
  const [h, w] = c.shape;
  const input = uint8Image(tf, c.pixels, h, w);
  const values = readOut<Int32Array>(tf, () => resizeBilinearPil(tf, input, resizeWeights(h, w, c.size[0], c.size[1])).toInt());
  input.dispose();
  return createHash('sha256').update(Uint8Array.from(values)).digest('hex');
});
const { kernels } = require(OP_ADDONS.PilResample) as { kernels(): string };
process.stdout.write(`${JSON.stringify({ kernels: kernels(), hashes })}\n`);
process.exit(0);
