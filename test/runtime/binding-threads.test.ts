// The binding from several worker threads at once, as the engine runs it: tfjs-node keeps the attribute names of
// eager ops in one process-wide std::set, and without the lock tools/native/patch_binding.py adds, two threads adding
// names at once corrupted it (the server's rare SIGSEGV, or a malloc abort at shutdown).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = path.resolve(__dirname, '../..');
const ROUNDS = 3000;

/**
 * Two worker threads, in lockstep, each run an Identity op carrying eight attribute names no op used before, the same
 * names in both threads: every round both insert into the set at the same moment. Unknown attributes are ignored by
 * TensorFlow, so each op just runs. The unpatched binding crashed or hung in each of 13 runs of 500 to 20,000 rounds
 * on the development machine, as did the GPU binding before it was rebuilt with the patch.
 */
const childCode = (binding: string) => `
  const { Worker } = require('node:worker_threads');
  const worker = ${JSON.stringify(`
    const { workerData, parentPort } = require('node:worker_threads');
    const tf = require('${binding}');
    const b = tf.backend().binding;
    const input = tf.backend().getInputTensorIds([tf.scalar(1)]);
    const { arrived, rounds } = workerData;
    for (let i = 0; i < rounds; i++) {
      Atomics.add(arrived, 0, 1);
      while (Atomics.load(arrived, 0) < 2 * (i + 1));
      const attrs = [{ name: 'T', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT }];
      for (let j = 0; j < 8; j++) attrs.push({ name: 'race_' + i + '_' + j, type: b.TF_ATTR_INT, value: 1 });
      for (const out of b.executeOp('Identity', attrs, input, 1)) b.deleteTensor(out.id);
    }
    parentPort.postMessage(rounds);
  `)};
  const arrived = new Int32Array(new SharedArrayBuffer(4));
  const threads = [0, 1].map(() => new Worker(worker, { eval: true, workerData: { arrived, rounds: ${ROUNDS} } }));
  Promise.all(threads.map((t) => new Promise((resolve, reject) => t.once('message', resolve).once('error', reject))))
    .then((done) => { console.log(JSON.stringify(done)); process.exit(0); });
`;

for (const binding of ['@tensorflow/tfjs-node', '@tensorflow/tfjs-node-gpu']) {
  test(`${binding}: two threads adding new op attribute names at once neither crash nor hang`, () => {
    const child = spawnSync(process.execPath, ['-e', childCode(binding)], {
      cwd: ROOT,
      encoding: 'utf8',
      // TensorFlow logs the first unknown attribute as an error; nothing else of its logs matters here.
      env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '3' },
      timeout: 90_000,
    });
    assert.is(child.signal, null, `the child was killed by ${child.signal} (a hang ends in SIGTERM from the timeout): ${child.stderr}`);
    assert.is(child.status, 0, child.stderr);
    assert.equal(JSON.parse(child.stdout.trim()), [ROUNDS, ROUNDS]);
  });
}

test.run();
