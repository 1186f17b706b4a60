// Small uploads live in Node's shared 8 KiB buffer pool: every format, small and large files posted in turns over
// HTTP, must be classified from its own bytes (PyTorch's answer, and the PNG twin's for lossless formats).
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { postImage, tempDir } from '../helpers/app';
import { assertTop3, PYTHON, serveDemoModel, type DemoServer, type Prediction } from './demo-reference';

interface Sample {
  file: string;
  twin: string;
  format: string;
  content: string;
  kind: 'noise' | 'solid' | 'large';
  lossless: boolean;
}

/** Node serves allocations under half its pool size (8 KiB) from the shared pool. */
const POOLED_BELOW = 4096;
const FORMATS = ['jpeg', 'png', 'gif', 'bmp', 'tiff', 'webp'];

async function predict(server: DemoServer, file: string): Promise<Prediction[]> {
  const reply = await postImage(server.url, readFileSync(file), { filename: path.basename(file) });
  assert.is(reply.status, 200, `${path.basename(file)}: ${JSON.stringify(reply.body)}`);
  return (reply.body as { predictions: Prediction[] }).predictions;
}

test('every format, small (pooled) and large files in turns: each answered from its own bytes', async () => {
  const dir = tempDir('uploads');
  const server = await serveDemoModel();
  try {
    const out = execFileSync(PYTHON, [path.join(__dirname, 'make_upload_samples.py'), dir]).toString();
    const samples = (JSON.parse(out) as { samples: Sample[] }).samples;
    assert.equal([...new Set(samples.map((s) => s.format))].sort(), [...FORMATS].sort(), 'every format the service reads');
    assert.is(samples.length, 21, 'noise, solid and large for 7 encodings');
    for (const s of samples) {
      const size = statSync(s.file).size;
      if (s.kind === 'large') assert.ok(size > 2 * POOLED_BELOW, `${s.content} is large (${size} B)`);
      else assert.ok(size < POOLED_BELOW, `${s.content} fits Node's buffer pool (${size} B)`);
    }
    const reference = server.reference(samples.map((s) => s.file));

    // Two rounds in opposite orders: an answer that depends on the uploads around it differs between them.
    const rounds: Map<string, Prediction[]>[] = [];
    for (const order of [samples, [...samples].reverse()]) {
      const answers = new Map<string, Prediction[]>();
      for (const s of order) answers.set(s.content, await predict(server, s.file));
      rounds.push(answers);
    }
    for (const [i, s] of samples.entries()) {
      const got = rounds[0].get(s.content)!;
      assert.equal(rounds[1].get(s.content), got, `${s.content}: the same answer in both rounds`);
      assertTop3(got, reference[i], s.content);
      if (s.lossless) assert.equal(await predict(server, s.twin), got, `${s.content}: the same answer as its pixels sent as PNG`);
    }
    // Every picture differs from every other, so no two answers may coincide.
    const seen = new Map<string, string>();
    for (const [content, got] of rounds[0]) {
      const key = JSON.stringify(got);
      assert.not.ok(seen.has(key), `${content} got the same answer as ${seen.get(key)}: ${key}`);
      seen.set(key, content);
    }
    assert.is(seen.size, samples.length, 'one distinct answer per picture');
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
