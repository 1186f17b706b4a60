// Command line: onnx2tfjs <model.onnx> --export-info <export.json> --reference <reference.json> --out <dir>.
import { parseArgs } from 'node:util';
import { loadRuntime } from '../../src/runtime';
import { ConvertError, packageModel } from './package-model';
import { InvalidModelError, UnsupportedError } from './types';

const USAGE = 'usage: tsx tools/onnx2tfjs/cli.ts <model.onnx> --export-info <export.json> --reference <reference.json> --out <dir>';

export interface CliIo {
  log(line: string): void;
  error(line: string): void;
}

/** Runs the converter CLI; returns the exit status (0 ok, 1 conversion failed, 2 usage). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: { 'export-info': { type: 'string' }, reference: { type: 'string' }, out: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    }));
  } catch (e) {
    io.error(`onnx2tfjs: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.log(USAGE);
    return 0;
  }
  const missing = ['export-info', 'reference', 'out'].filter((k) => typeof values[k] !== 'string' || values[k] === '');
  if (positionals.length !== 1 || missing.length > 0) {
    const what = positionals.length !== 1 ? `expected one ONNX file, got ${positionals.length}` : `missing --${missing.join(', --')}`;
    io.error(`onnx2tfjs: ${what}\n${USAGE}`);
    return 2;
  }
  try {
    const { tf } = loadRuntime({ device: 'cpu' });
    const r = await packageModel({
      onnxPath: positionals[0],
      exportInfoPath: values['export-info'] as string,
      referencePath: values.reference as string,
      outDir: values.out as string,
      tf,
    });
    const batches = r.parity.byBatch.map((b) => `batch ${b.batch}: ${b.maxAbsDiff.toExponential(3)}`).join(', ');
    io.log(`onnx2tfjs: converted in ${r.convertMs} ms; parity max |logit_tfjs - logit_torch| = ${r.parity.maxAbsDiff.toExponential(3)} (${batches}), on the server's session ${r.session.maxAbsDiff.toExponential(3)}, <= tolerance ${r.parity.tolerance.toExponential(3)}`);
    io.log(`onnx2tfjs: wrote ${values.out} (${r.files.length} files, ${r.files.reduce((a, f) => a + f.bytes, 0)} bytes)`);
    return 0;
  } catch (e) {
    if (e instanceof ConvertError || e instanceof UnsupportedError || e instanceof InvalidModelError) {
      io.error(`onnx2tfjs: error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (require.main === module) {
  runCli(process.argv.slice(2), { log: (l) => console.log(l), error: (l) => console.error(l) }).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      console.error(`onnx2tfjs: internal error: ${(e as Error).stack ?? String(e)}`);
      process.exitCode = 1;
    },
  );
}
