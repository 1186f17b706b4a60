// The bounded fuzz run of the test suite: every target, a fixed seed so that failures repeat, FUZZ_SECONDS in all
// (default 75); the regression files first. `make fuzz` is the long, randomly seeded run (docs/fuzzing.md).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatFinding, runFuzz } from './fuzz';

const SEED = 20251130;
const SECONDS = Number(process.env.FUZZ_SECONDS ?? 75);

test(`fuzz targets keep their properties (seed ${SEED}, ${SECONDS} s)`, async () => {
  const reports = await runFuzz({ seconds: SECONDS, seed: SEED, log: (line) => console.log(line) });
  const findings = reports.flatMap((r) => r.findings);
  assert.is(findings.length, 0, `${findings.length} finding(s):\n${findings.map(formatFinding).join('\n')}`);
});

test.run();
