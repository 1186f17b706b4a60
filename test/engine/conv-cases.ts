// Geometries PackedConv2D is checked on: kernel sizes, strides and each padding form, channel counts that leave a
// partial panel, batches that span several blocks of rows, and a matrix product; then the same for Winograd's algorithm.
import type { ConvCase } from './conv-op';

export const CASES: ConvCase[] = [
  { input: [2, 9, 7, 5], kernel: [3, 3], outChannels: 40, padding: 'SAME', activation: 'Relu', residual: true },
  { input: [1, 11, 10, 16], kernel: [3, 3], outChannels: 64, strides: [2, 2], padding: 'SAME' },
  { input: [1, 20, 18, 3], kernel: [7, 7], outChannels: 33, strides: [2, 2], padding: [[3, 3], [3, 3]], activation: 'Relu' },
  { input: [3, 8, 8, 12], kernel: [1, 1], outChannels: 7, strides: [2, 2], padding: 'VALID' },
  { input: [1, 6, 5, 9], kernel: [3, 3], outChannels: 96, padding: [[0, 2], [1, 0]], activation: 'Relu6', residual: true },
  { input: [2, 12, 9, 8], kernel: [5, 3], outChannels: 32, strides: [2, 1], padding: 'VALID', activation: 'Relu6' },
  { input: [5, 512], kernel: [1, 1], outChannels: 102, padding: 'VALID' },
  { input: [1, 2, 2, 512], kernel: [3, 3], outChannels: 512, padding: 'SAME', activation: 'Relu', residual: true },
  { input: [13, 8, 8, 64], kernel: [3, 3], outChannels: 64, padding: 'SAME', activation: 'Relu' },
  // Winograd's F(2x2, 3x3): odd sizes (a last tile cut short), a partial panel, explicit and no padding, blocks of
  // tiles, and a single tile of 512 channels.
  { input: [2, 9, 7, 5], kernel: [3, 3], outChannels: 40, padding: 'SAME', activation: 'Relu', residual: true, algorithm: 'winograd' },
  { input: [1, 6, 5, 9], kernel: [3, 3], outChannels: 96, padding: [[0, 2], [1, 0]], activation: 'Relu6', residual: true, algorithm: 'winograd' },
  { input: [2, 7, 6, 8], kernel: [3, 3], outChannels: 32, padding: 'VALID', algorithm: 'winograd' },
  { input: [13, 8, 8, 64], kernel: [3, 3], outChannels: 64, padding: 'SAME', activation: 'Relu', algorithm: 'winograd' },
  { input: [1, 2, 2, 512], kernel: [3, 3], outChannels: 512, padding: 'SAME', activation: 'Relu', residual: true, algorithm: 'winograd' },
];

/** The output shape TensorFlow's Conv2D gives the case. */
export function outputShape(c: ConvCase): number[] {
  if (c.input.length === 2) return [c.input[0], c.outChannels];
  const [n, h, w] = c.input;
  const [sh, sw] = c.strides ?? [1, 1];
  const axis = (size: number, k: number, s: number, pad: [number, number] | undefined) => {
    if (c.padding === 'SAME') return Math.ceil(size / s);
    const [before, after] = pad ?? [0, 0];
    return Math.floor((size + before + after - k) / s) + 1;
  };
  const pads = typeof c.padding === 'string' ? [undefined, undefined] : c.padding;
  return [n, axis(h, c.kernel[0], sh, pads[0]), axis(w, c.kernel[1], sw, pads[1]), c.outChannels];
}
