// The HTTP stage of the benchmark's ceiling: the plain Koa + @koa/multer server of the onnxruntime baseline, answering
// every upload with the same top-3 without looking at it. Its CPU per request is what any Koa server pays per upload.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { createPlainApp, type Prediction } from './ort-server';

const ANSWER: Prediction[] = [
  { label: '0', probability: 0.5 },
  { label: '1', probability: 0.3 },
  { label: '2', probability: 0.2 },
];

function main(): void {
  const { values } = parseArgs({ options: { port: { type: 'string', default: '5014' }, host: { type: 'string', default: '127.0.0.1' } } });
  if (!/^\d+$/.test(values.port)) throw new Error(`--port must be a number, got ${values.port}\nusage: http-stage [--port 5014] [--host 127.0.0.1]`);
  const server = http.createServer(createPlainApp(async () => ANSWER).callback());
  server.listen(Number(values.port), values.host, () => console.log(`http-stage listening on http://${values.host}:${values.port}`));
  const stop = () => server.close(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

try {
  main();
} catch (err) {
  console.error((err as Error).message);
  process.exit(1);
}
