// Plain onnxruntime-node baseline of the benchmark: Koa + @koa/multer, jimp decode and resize, default session options.
import http from 'node:http';
import Koa from 'koa';
import Router from '@koa/router';
import multer from '@koa/multer';
import { Jimp } from 'jimp';
import { InferenceSession, Tensor } from 'onnxruntime-node';

const IMAGE_SIZE = 64;
const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const TOP_K = 3;
const MAX_UPLOAD_BYTES = 20 * 1024 * 1024;

export interface Prediction {
  label: string;
  probability: number;
}

/** Decodes an image and returns the normalised float32 NCHW tensor [1, 3, 64, 64] the ONNX export takes. */
export async function prepareImage(bytes: Buffer): Promise<Tensor> {
  const image = await Jimp.fromBuffer(bytes);
  // Jimp's default resize: its two-pass bilinear resampler.
  image.resize({ w: IMAGE_SIZE, h: IMAGE_SIZE });
  const rgba = image.bitmap.data;
  const plane = IMAGE_SIZE * IMAGE_SIZE;
  const data = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    for (let c = 0; c < 3; c++) {
      data[c * plane + i] = (rgba[i * 4 + c] / 255 - MEAN[c]) / STD[c];
    }
  }
  return new Tensor('float32', data, [1, 3, IMAGE_SIZE, IMAGE_SIZE]);
}

/** Softmax over one row of logits, then the k most probable classes, labelled by index as the original does. */
export function topK(logits: Float32Array, k: number): Prediction[] {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps
    .map((e, index) => ({ index, probability: e / sum }))
    .sort((a, b) => b.probability - a.probability)
    .slice(0, k)
    .map(({ index, probability }) => ({ label: String(index), probability }));
}

function clientError(ctx: Koa.Context, status: number, message: string): void {
  ctx.status = status;
  ctx.body = { success: false, error: { message } };
}

/** What the app does with an upload's bytes: the top-3 answer; UndecodableImage for a file it cannot read. */
export type Predictor = (bytes: Buffer) => Promise<Prediction[]>;

export class UndecodableImage extends Error {}

/** The model behind the plain server: jimp decode and resize, one onnxruntime session run per request. */
export function ortPredictor(session: InferenceSession): Predictor {
  return async (bytes) => {
    let input: Tensor;
    try {
      input = await prepareImage(bytes);
    } catch (err) {
      throw new UndecodableImage((err as Error).message);
    }
    const outputs = await session.run({ [session.inputNames[0]]: input });
    return topK(outputs[session.outputNames[0]].data as Float32Array, TOP_K);
  };
}

/** Koa app serving `POST /predict` (multipart field `image`) with the original demo's JSON answer. */
export function createPlainApp(predict: Predictor): Koa {
  const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: MAX_UPLOAD_BYTES, files: 1 } });
  const router = new Router();
  router.post('/predict', upload.single('image'), async (ctx) => {
    const file = ctx.request.file;
    if (!file || file.size === 0) {
      clientError(ctx, 400, 'no image: send the picture as multipart/form-data field "image"');
      return;
    }
    let predictions: Prediction[];
    try {
      predictions = await predict(file.buffer);
    } catch (err) {
      if (!(err instanceof UndecodableImage)) throw err;
      clientError(ctx, 415, `cannot decode the image (${err.message}): send a JPEG, PNG, BMP, GIF or TIFF file`);
      return;
    }
    ctx.body = { success: true, predictions };
  });

  const app = new Koa();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const e = err as { code?: string; message: string };
      if (e.code === 'LIMIT_FILE_SIZE') {
        clientError(ctx, 413, `image larger than ${MAX_UPLOAD_BYTES} bytes: send a smaller file`);
        return;
      }
      throw err;
    }
  });
  app.use(router.routes()).use(router.allowedMethods());
  return app;
}

function parseArgs(argv: string[]): { model: string; host: string; port: number } {
  const usage = 'usage: ort-server --model path/to/model.onnx [--port 5013] [--host 127.0.0.1]';
  const args = { model: '', host: '127.0.0.1', port: 5013 };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`missing value after ${flag}\n${usage}`);
    if (flag === '--model') args.model = value;
    else if (flag === '--host') args.host = value;
    else if (flag === '--port' && /^\d+$/.test(value)) args.port = Number(value);
    else throw new Error(`bad argument ${flag} ${value}\n${usage}`);
  }
  if (!args.model) throw new Error(`--model is required\n${usage}`);
  return args;
}

async function main(): Promise<void> {
  const { model, host, port } = parseArgs(process.argv.slice(2));
  // Default session options: all graph optimisations, intra-op threads chosen by onnxruntime (one per core).
  const session = await InferenceSession.create(model);
  const server = http.createServer(createPlainApp(ortPredictor(session)).callback());
  server.listen(port, host, () => console.log(`ort-server listening on http://${host}:${port}`));
  const stop = () => server.close(() => void session.release().then(() => process.exit(0)));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
