// Run by packed-conv.test.ts in a process of its own (CONV_KERNELS is read once per process): prints the kernels the
// op runs and a sha256 of every case's output bytes, one JSON line.
import { createHash } from 'node:crypto';
import { loadRuntime } from '../../src/runtime';
import { convolutionKernels } from '../../src/tf-ops';
import { caseTensors, packedConv } from './conv-op';
import { CASES, outputShape } from './conv-cases';

const { tf } = loadRuntime({ device: 'cpu' });
const hashes = CASES.map((c, i) => {
  const t = caseTensors(tf, c, 100 + i, outputShape(c));
  const out = packedConv(tf, c, t);
  const hash = createHash('sha256').update(new Uint8Array((out.dataSync() as Float32Array).buffer)).digest('hex');
  tf.dispose([out, ...Object.values(t).filter((x) => x !== undefined)]);
  return hash;
});
process.stdout.write(`${JSON.stringify({ kernels: convolutionKernels().running, hashes })}\n`);
process.exit(0);
