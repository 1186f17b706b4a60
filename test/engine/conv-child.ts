// Run by packed-conv.test.ts in a process of its own (CONV_KERNELS is read once per process): prints the kernels the
// op runs and a sha256 of every case's output bytes, one JSON line. With CONV_LEND=1 the op takes the helper thread
// (lendIdleCore) and the cases run again and again until the helper has taken part, each time giving the same bits;
// then with every engine slot busy, and with batches over the limit, the helper must stay out.
import { createHash } from 'node:crypto';
import { loadRuntime } from '../../src/runtime';
import { convolutionKernels, helperUnits, lendIdleCore } from '../../src/tf-ops';
import { caseTensors, packedConv, type ConvCase } from './conv-op';
import { CASES, outputShape } from './conv-cases';

const { tf } = loadRuntime({ device: 'cpu' });
const hashesOf = (cases: ConvCase[]) =>
  cases.map((c, i) => {
    const t = caseTensors(tf, c, 100 + i, outputShape(c));
    const out = packedConv(tf, c, t);
    const hash = createHash('sha256').update(new Uint8Array((out.dataSync() as Float32Array).buffer)).digest('hex');
    tf.dispose([out, ...Object.values(t).filter((x) => x !== undefined)]);
    return hash;
  });

const hashes = hashesOf(CASES);
let lent: { rounds: number; units: number; same: boolean; busyUnits: number; overLimitUnits: number } | undefined;
if (process.env.CONV_LEND === '1') {
  // Two engine slots, this thread's busy and the other idle.
  const slots = new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
  slots[0] = 1;
  lendIdleCore({ slots, maxBatch: 64 });
  let rounds = 0;
  let same = true;
  // The helper joins when the system schedules it: a busy machine may take a few rounds.
  while (rounds < 500 && (rounds < 3 || helperUnits() === 0)) {
    same &&= JSON.stringify(hashesOf(CASES)) === JSON.stringify(hashes);
    rounds++;
  }
  const units = helperUnits();
  slots[1] = 1;
  hashesOf(CASES);
  const busyUnits = helperUnits() - units;
  slots[1] = 0;
  lendIdleCore({ slots, maxBatch: 1 });
  hashesOf(CASES.filter((c) => c.input[0] > 1));
  const overLimitUnits = helperUnits() - units - busyUnits;
  lent = { rounds, units, same, busyUnits, overLimitUnits };
}
process.stdout.write(`${JSON.stringify({ kernels: convolutionKernels().running, hashes, lent })}\n`);
process.exit(0);
