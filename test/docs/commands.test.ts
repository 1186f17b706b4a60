// Every command in the code blocks of README*.md and docs/*.md runs here as written, against `make serve` started as
// README says; the few that cannot run inside a test are listed with where they run instead.
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { freePort } from '../../bench/server-process';
import { tempDir } from '../helpers/app';
import { spawnLogging } from '../helpers/process';

const ROOT = path.join(__dirname, '../..');
const DOCS = ['README.md', 'README.zh-CN.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** Commands that a test cannot run here, and where each one runs instead. */
const ELSEWHERE: Record<string, string> = {
  'make test': 'the test command itself: .ci/run runs it on a fresh clone',
  'make setup TF_SOURCE=npm': "tfjs-node's own download from Google's storage, which CI's network cannot reach",
  'make setup-gpu TF_SOURCE=npm': "tfjs-node-gpu's own download from Google's storage, which CI's network cannot reach",
  'node -r tsx/cjs test/run.ts onnx2tfjs/conformance': 'a part of make test',
};

interface Snippet {
  file: string;
  kind: 'shell' | 'ts';
  text: string;
}

/** Shell commands (```bash/sh blocks, and `$ ` lines of plain blocks) and TypeScript blocks, in document order. */
function snippets(file: string): Snippet[] {
  const out: Snippet[] = [];
  let block: { lang: string; lines: string[] } | undefined;
  for (const line of readFileSync(path.join(ROOT, file), 'utf8').split('\n')) {
    const fence = /^```(\S*)/.exec(line);
    if (fence && !block) {
      block = { lang: fence[1], lines: [] };
    } else if (fence && block) {
      if (block.lang === 'ts') out.push({ file, kind: 'ts', text: block.lines.join('\n') });
      for (const l of block.lines) {
        const command = ['bash', 'sh', 'shell'].includes(block.lang) ? l : l.startsWith('$ ') ? l.slice(2) : '';
        // A comment after two spaces explains the command; a line of its own shows output.
        const bare = command.replace(/\s{2,}#.*$/, '').trim();
        if (bare !== '' && !bare.startsWith('#')) out.push({ file, kind: 'shell', text: bare });
      }
      block = undefined;
    } else if (block) {
      block.lines.push(line);
    }
  }
  return out;
}

test('every documented command runs as written against `make serve` on a fresh model folder', async () => {
  const all = DOCS.flatMap(snippets);
  const commands = [...new Set(all.filter((s) => s.kind === 'shell').map((s) => s.text))];
  assert.ok(commands.includes('make serve'), 'README gives make serve');
  for (const listed of Object.keys(ELSEWHERE)) assert.ok(commands.includes(listed), `ELSEWHERE lists "${listed}", which no doc has any more`);

  const modelDir = tempDir('docs-model');
  const port = await freePort();
  const env = { ...process.env, MODEL_DIR: modelDir, PORT: String(port), PREDICT_URL: `http://localhost:${port}`, TF_CPP_MIN_LOG_LEVEL: '2' };
  rmSync(modelDir, { recursive: true });
  // As README says: with no model it converts one (the demo, since the repository has no best.pth) and serves.
  const server = spawnLogging('bash', ['-c', 'make serve'], { cwd: ROOT, env });
  const ran: string[] = [];
  try {
    await server.logged('ready');
    for (const command of commands.filter((c) => c !== 'make serve' && !(c in ELSEWHERE))) {
      const local = command.replace(/localhost:5012/g, `localhost:${port}`);
      const result = spawnSync('bash', ['-c', local], { cwd: ROOT, env, encoding: 'utf8', maxBuffer: 16 << 20 });
      assert.is(result.status, 0, `"${command}" exited ${result.status}:\n${result.stdout}\n${result.stderr}`);
      if (/^curl .*\/predict/.test(command)) {
        const body = JSON.parse(result.stdout) as { success: boolean; predictions?: unknown[]; results?: { predictions?: unknown[]; error?: unknown }[] };
        assert.is(body.success, true, `${command}: ${result.stdout}`);
        const topk = /topk=(\d+)/.exec(command)?.[1] ? Number(/topk=(\d+)/.exec(command)![1]) : 3;
        // Several `image` files answer one item per file, each with predictions or its own error.
        const files = command.match(/-F "image=@/g)?.length ?? 0;
        if (files > 1) assert.is(body.results?.length, files, command);
        for (const item of files > 1 ? body.results! : [body]) {
          if (item.predictions) assert.is(item.predictions.length, topk, command);
          else assert.ok('error' in item, command);
        }
      }
      if (/^curl .*\/health/.test(command)) assert.is((JSON.parse(result.stdout) as { status: string }).status, 'ok', command);
      ran.push(command);
    }
    for (const snippet of all.filter((s) => s.kind === 'ts')) {
      const out = execFileSync(process.execPath, [path.join(ROOT, 'node_modules/tsx/dist/cli.mjs'), '--eval', snippet.text], { cwd: ROOT, env, encoding: 'utf8' });
      assert.ok(out.trim().length > 0, `${snippet.file}: the TypeScript example prints its result`);
      ran.push(`${snippet.file}: TypeScript example`);
    }
  } finally {
    await server.kill();
    rmSync(modelDir, { recursive: true, force: true });
  }
  assert.ok(ran.length >= 8, `ran ${ran.length} commands: ${ran.join('; ')}`);
  console.log(`  docs: ${ran.length} commands run as written, ${Object.keys(ELSEWHERE).length} run elsewhere (listed)`);
});

test.run();
