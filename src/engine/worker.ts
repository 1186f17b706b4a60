// A worker thread of the engine: its own TensorFlow binding and session of the model; it runs the batches the pool
// hands it (decode -> preprocess -> infer -> postprocess) off the server's event loop.
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import sharp from 'sharp';
import { decoderTimesItself } from '../image/decode';
import { BUSY_TRIM_INTERVAL_MS, releaseFreedMemory } from '../memory';
import { loadRuntime } from '../runtime';
import { lendIdleCore, readyHelper } from '../tf-ops';
import { Model } from './model';
import { createStages, runBatch, type Stages } from './pipeline';
import type { PredictJob } from './pipeline';
import { settledToWire, toWire, type FromWorker, type MoreJobs, type ToWorker, type WireJob, type WorkerSetup } from './protocol';

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
  if (setup.lending) lendIdleCore(setup.lending);
  const stages = createStages(tf, model, { maxPixels: setup.maxPixels, honourExif: setup.honourExif, decodeTimeoutMs: setup.decodeTimeoutMs });
  post({ type: 'ready', runtime: info });
  return stages;
}

const jobFromWire = (job: WireJob): PredictJob => ({ bytes: new Uint8Array(job.bytes), topk: job.topk });

/** Jobs the pool sent for batch `id` since the last look; those for a batch already past its model call are dropped. */
function moreFor(channel: MessagePort, id: number): PredictJob[] {
  const jobs: PredictJob[] = [];
  for (let received = receiveMessageOnPort(channel); received; received = receiveMessageOnPort(channel)) {
    const message = received.message as MoreJobs;
    if (message.id === id) jobs.push(...message.jobs.map(jobFromWire));
  }
  return jobs;
}

const setup = workerData as WorkerSetup;
start(setup).then(
  (stages) => {
    let trimmed = performance.now();
    port.on('message', (message: ToWorker) => {
      const { id } = message;
      // Busy from the first decode to the answer: meanwhile the other engine threads' convolutions leave this core be.
      if (setup.lending) Atomics.store(setup.lending.slots, setup.lending.slot, 1);
      // The pool times each decode from these messages and ends this thread if one runs past its budget.
      const progress = (step: { index: number; job: PredictJob } | { infer: number }) => {
        if ('index' in step) {
          post({ type: 'decoding', id, index: step.index, selfTimed: decoderTimesItself(step.job.bytes) });
          return;
        }
        post({ type: 'inferring', id });
        if (setup.lending) readyHelper(step.infer);
      };
      void runBatch(stages, message.jobs.map(jobFromWire), progress, () => moreFor(setup.more, id)).then((results) => {
        if (setup.lending) Atomics.store(setup.lending.slots, setup.lending.slot, 0);
        post({ type: 'results', id, results: results.map(settledToWire), tensors: stages.tf.memory().numTensors });
        // Batches that overlap keep the engine busy for hours and the pool's idle trim never comes: the arenas would
        // keep what batches of different sizes freed. Here, between batches, the pause holds up no event loop.
        if (performance.now() - trimmed >= BUSY_TRIM_INTERVAL_MS) {
          releaseFreedMemory();
          trimmed = performance.now();
        }
      });
    });
  },
  (err: unknown) => post({ type: 'failed', error: toWire(err) }),
);
