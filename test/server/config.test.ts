// Config: defaults, flag over env over default, validation errors that show the usage, docs/config.md in sync.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, configTableMarkdown, parseConfig, type Config } from '../../src/config';

function config(argv: string[], env: NodeJS.ProcessEnv = {}): Config {
  const result = parseConfig(argv, env);
  if (result.help) throw new Error('unexpected --help result');
  return result.config;
}

function configError(argv: string[], env: NodeJS.ProcessEnv = {}): ConfigError {
  let caught: unknown;
  try {
    parseConfig(argv, env);
  } catch (err) {
    caught = err;
  }
  assert.instance(caught, ConfigError, 'parseConfig must refuse this configuration');
  return caught as ConfigError;
}

test('defaults: port 5012 on localhost, model_tfjs, auto device, top-3', () => {
  assert.equal(config([]), {
    port: 5012,
    host: '127.0.0.1',
    modelDir: 'model_tfjs',
    device: 'auto',
    topk: 3,
    maxUploadBytes: 20 * 1024 * 1024,
    maxFiles: 16,
    maxPixels: 36_000_000,
    honourExif: false,
    decodeTimeoutMs: 5000,
    workerHeapMb: 512,
    intraOpThreads: undefined,
    interOpThreads: undefined,
    workers: 1,
    threads: undefined,
    maxBatch: 16,
    maxBatchDelayMs: 0,
    idleCoreMaxBatch: 1,
    requestTimeoutMs: 30_000,
    maxInFlight: 128,
    shutdownDrainMs: 5000,
    shutdownGraceMs: 30_000,
    logLevel: 'info',
    logFormat: 'json',
    compat: false,
    apiKeys: undefined,
    apiKeysFile: undefined,
    jwtSecretFile: undefined,
    jwtPublicKeyFile: undefined,
    jwksFile: undefined,
    jwtIssuer: undefined,
    jwtAudience: undefined,
    jwtScope: undefined,
    authHealth: false,
    authMetrics: false,
    corsOrigins: undefined,
  });
});

test('a flag wins over its env variable, which wins over the default', () => {
  const env = { PORT: '6001', DEVICE: 'cpu', MODEL_DIR: '/models/a', TF_NUM_INTRAOP_THREADS: '2', HONOUR_EXIF: 'yes' };
  const fromEnv = config([], env);
  assert.is(fromEnv.port, 6001);
  assert.is(fromEnv.device, 'cpu');
  assert.is(fromEnv.modelDir, '/models/a');
  assert.is(fromEnv.intraOpThreads, 2);
  assert.is(fromEnv.honourExif, true);
  const fromFlags = config(['--port', '6002', '--device=gpu', '--model-dir', 'm2', '--topk', '5'], env);
  assert.is(fromFlags.port, 6002);
  assert.is(fromFlags.device, 'gpu');
  assert.is(fromFlags.modelDir, 'm2');
  assert.is(fromFlags.topk, 5);
  assert.is(config(['--honour-exif']).honourExif, true);
  assert.is(config([], { PORT: '' }).port, 5012, 'an empty env variable counts as unset');
});

test('--inter-op-threads takes TensorFlow\'s -1 (sessions in the calling thread) and 0 (a thread per core)', () => {
  assert.is(config(['--inter-op-threads=-1']).interOpThreads, -1);
  assert.is(config([], { TF_NUM_INTEROP_THREADS: '-1' }).interOpThreads, -1);
  assert.is(config(['--inter-op-threads', '0']).interOpThreads, 0);
  assert.is(config(['--inter-op-threads', '2']).interOpThreads, 2);
});

test('invalid values name the source, the expectation, and show the usage', () => {
  const port = configError(['--port', 'abc']);
  assert.match(port.message, 'Invalid value "abc" for --port: expected an integer from 0 to 65535.');
  assert.match(port.message, 'Usage: node dist/src/main.js [options]');
  assert.match(port.message, 'env PORT');
  assert.match(configError([], { PORT: '70000' }).message, 'for env PORT: expected an integer from 0 to 65535');
  assert.match(configError(['--device', 'tpu']).message, 'expected one of auto, cpu, gpu');
  assert.match(configError([], { HONOUR_EXIF: 'maybe' }).message, 'for env HONOUR_EXIF: expected true or false');
  assert.match(configError(['--topk', '0']).message, 'expected an integer >= 1');
  assert.match(configError(['--topk', '2.5']).message, 'expected an integer >= 1');
  assert.match(configError(['--inter-op-threads=-2']).message, 'expected an integer from -1 to 1024');
  assert.match(configError([], { PORT: '-1' }).message, 'for env PORT: expected an integer from 0 to 65535');
  assert.match(configError(['--max-in-flight', '-3']).message, 'Invalid command line');
  assert.match(configError(['--log-level', 'loud']).message, 'expected one of debug, info, warn, error, silent');
});

test('unknown flags and positionals are refused with the usage', () => {
  assert.match(configError(['--prot', '5013']).message, /Invalid command line: .*--prot/);
  assert.match(configError(['serve']).message, 'Invalid command line');
});

test('--help asks for the usage text', () => {
  assert.equal(parseConfig(['--help'], {}), { help: true });
});

test('docs/config.md and README.md carry the table generated from the option list', () => {
  for (const file of ['docs/config.md', 'README.md']) {
    const doc = readFileSync(path.join(__dirname, '../..', file), 'utf8');
    assert.ok(doc.includes(configTableMarkdown()), `${file} is out of date: paste configTableMarkdown() into it`);
  }
});

test.run();
