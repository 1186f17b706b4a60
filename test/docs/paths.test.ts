// A clone works anywhere: nothing names a path of the machine it was written on or the material beside that checkout.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = path.join(__dirname, '../..');
const SCOPE = ['src', 'tools', 'test', 'bench', 'docs', 'Makefile', '.ci', 'README.md', 'README.zh-CN.md', 'package.json', 'tsconfig.json'];
// Home and work folders of build machines, and the shared material that sits beside the developers' checkout.
const FORBIDDEN = [/\/work\//, /\/root\//, /\/home\/[a-z]/, /\.\.\/shared\b/, /\bshared\/images\b/];

test('no tracked file names an absolute path of the build machine or the shared folder beside the checkout', () => {
  const files = execFileSync('git', ['ls-files', '-co', '--exclude-standard', '--', ...SCOPE], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .filter((f) => f !== '' && !f.startsWith('test/fixtures/') && f !== 'test/docs/paths.test.ts');
  assert.ok(files.length > 100, `found only ${files.length} files to check`);
  const hits: string[] = [];
  for (const file of files) {
    const lines = readFileSync(path.join(ROOT, file), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (FORBIDDEN.some((re) => re.test(line))) hits.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.equal(hits, [], `paths a user's clone does not have:\n${hits.join('\n')}`);
});

test('the fixture images the tests read are in the repository, each listed in the MANIFEST with source and licence', () => {
  const manifest = readFileSync(path.join(ROOT, 'test/fixtures/images/MANIFEST.tsv'), 'utf8').trim().split('\n');
  const [header, ...rows] = manifest.map((l) => l.split('\t'));
  const col = (name: string) => header.indexOf(name);
  assert.ok(col('license') >= 0 && col('source_package') >= 0, 'MANIFEST has licence and source columns');
  const tracked = new Set(execFileSync('git', ['ls-files', '-co', '--exclude-standard', 'test/fixtures/images'], { cwd: ROOT, encoding: 'utf8' }).split('\n'));
  for (const row of rows) {
    assert.ok(tracked.has(`test/fixtures/images/${row[0]}`), `${row[0]} is in the repository`);
    assert.ok(row[col('license')].length > 0, `${row[0]} has a licence`);
  }
  assert.ok(rows.length >= 67, `MANIFEST lists ${rows.length} files`);
});

test.run();
