// The one-image ceiling through HTTP: the plain Koa + @koa/multer server of the onnxruntime baseline running our
// stages (decode, PIL-exact preprocess, the model's session at batch 1, softmax + top-k) on its own event loop, one
// request at a time. Nothing else: no engine threads, no batching, no admission, logs or metrics. At concurrency 1
// nothing can serve a lone request faster with the same stages on one core, so ours' p50 against its p50 is what
// our architecture (hand-overs, batching, the rest of the server) adds to a lone request.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { parseConfig } from '../src/config';
import { Model } from '../src/engine/model';
import { createStages, runBatch } from '../src/engine/pipeline';
import { ServiceError } from '../src/errors';
import { loadRuntime } from '../src/runtime';
import { createPlainApp, UndecodableImage, type Predictor } from './ort-server';

const TOP_K = 3;
const USAGE = 'usage: inline-server --model-dir <dir> [--port 5015] [--host 127.0.0.1]';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { 'model-dir': { type: 'string' }, port: { type: 'string', default: '5015' }, host: { type: 'string', default: '127.0.0.1' } },
  });
  if (!values['model-dir']) throw new Error(`--model-dir is required\n${USAGE}`);
  if (!/^\d+$/.test(values.port)) throw new Error(`--port must be a number, got ${values.port}\n${USAGE}`);
  // The server's own defaults (threads, pixel limit, EXIF), as bench/ceiling.ts takes them.
  const parsed = parseConfig([], {});
  if (parsed.help) throw new Error('parseConfig without arguments asked for the usage text');
  const { config } = parsed;
  const { tf } = loadRuntime({ device: 'cpu', intraOpThreads: config.intraOpThreads, interOpThreads: config.interOpThreads });
  const model = await Model.load(tf, values['model-dir']);
  const stages = createStages(tf, model, { maxPixels: config.maxPixels, honourExif: config.honourExif });
  // What an engine thread runs for a batch, here a batch of one in this thread, with no batcher in front.
  const predict: Predictor = async (bytes) => {
    const [result] = await runBatch(stages, [{ bytes, topk: TOP_K }]);
    if (result.ok) return result.value.predictions;
    throw result.error instanceof ServiceError ? new UndecodableImage(result.error.message) : result.error;
  };
  const server = http.createServer(createPlainApp(predict).callback());
  server.listen(Number(values.port), values.host, () => console.log(`inline-server listening on http://${values.host}:${values.port}`));
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
