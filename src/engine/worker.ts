// A worker thread of the engine: its own TensorFlow binding and session of the model; it runs the batches the pool
// hands it (decode -> preprocess -> infer -> postprocess) off the server's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import sharp from 'sharp';
import { decoderTimesItself } from '../image/decode';
import { loadRuntime } from '../runtime';
import { Model } from './model';
import { createStages, runBatch, type Stages } from './pipeline';
import { settledToWire, toWire, type FromWorker, type ToWorker, type WorkerSetup } from './protocol';

const port = parentPort;
if (!port) throw new Error('src/engine/worker.ts runs as a worker thread of the engine (worker-pool.ts)');
const post = (message: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(message, transfer);

async function start(setup: WorkerSetup): Promise<Stages> {
  // One libvips thread per decode and no cache of decoded images: the workers already use every core, and a
  // cache would keep large images in memory after their answer.
  sharp.concurrency(1);
  sharp.cache(false);
  // The pool set TensorFlow's thread and oneDNN variables in the process environment before starting workers.
  const { tf, info } = loadRuntime({ device: setup.device });
  const model = await Model.fromSession(tf, setup.metadata, setup.modelDir, setup.sessionDir);
  const stages = createStages(tf, model, { maxPixels: setup.maxPixels, honourExif: setup.honourExif, decodeTimeoutMs: setup.decodeTimeoutMs });
  post({ type: 'ready', runtime: info });
  return stages;
}

start(workerData as WorkerSetup).then(
  (stages) => {
    port.on('message', (message: ToWorker) => {
      const { id } = message;
      const jobs = message.jobs.map((job) => ({ bytes: new Uint8Array(job.bytes), topk: job.topk }));
      // The pool times each decode from these messages and ends this thread if one runs past its budget.
      const progress = (index: number | 'infer') =>
        post(index === 'infer' ? { type: 'inferring', id } : { type: 'decoding', id, index, selfTimed: decoderTimesItself(jobs[index].bytes) });
      void runBatch(stages, jobs, progress).then((results) =>
        post({ type: 'results', id: message.id, results: results.map(settledToWire), tensors: stages.tf.memory().numTensors }),
      );
    });
  },
  (err: unknown) => post({ type: 'failed', error: toWire(err) }),
);
