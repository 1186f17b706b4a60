// tools/export_onnx.py as a child process: every checkpoint form, every label form, every user error.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = path.resolve(__dirname, '../..');
const PYTHON = process.env.PYTHON ?? '/usr/bin/python3';
const EXPORTER = path.join(ROOT, 'tools/export_onnx.py');
const OUTPUTS = ['export.json', 'model.onnx', 'reference.json', 'reference_input.f32', 'reference_logits.f32'];
const NUM_CLASSES = 102;

// Derives every checkpoint form users save from the demo checkpoint's weights (argv[1]: the folder).
const MAKE_FORMS = `
import collections, sys
import numpy, torch
from torch import nn
from torchvision import models
d = sys.argv[1]
sd = torch.load(d + '/demo.pth', weights_only=True)['state_dict']
def save(obj, name, **kw):
    torch.save(obj, d + '/' + name + '.pth', **kw)
save(sd, 'bare')
# As PyTorch's tutorial saves a general checkpoint: floats (lr, loss) that torch 1.13's safe reader rejects.
save({'model_state_dict': sd, 'optimizer_state_dict': {'state': {}, 'param_groups': [{'lr': 0.1, 'params': [0]}]},
      'epoch': 7, 'loss': 0.25}, 'model-state-dict')
save({'model': sd}, 'model-key')
save({'state_dict': collections.OrderedDict(('module.' + k, v) for k, v in sd.items())}, 'data-parallel')
save(sd, 'legacy', _use_new_zipfile_serialization=False)
save({'state_dict': collections.OrderedDict(('model.' + k, v) for k, v in sd.items()), 'hyper_parameters': {'lr': 0.1}},
     'lightning')
save({'state_dict': [1, 2], 'epoch': 7}, 'no-state-dict')
save(collections.OrderedDict((k, v) for k, v in sd.items() if not k.startswith('fc.')), 'headless')
save(collections.OrderedDict((k, v) for k, v in sd.items() if not k.endswith('num_batches_tracked')), 'no-batches-tracked')
# ImageFolder numbers class folders in string order: '1', '10', '100', '101', '102', '11', ...
folders = sorted(str(i) for i in range(1, 103))
plain = collections.OrderedDict((k.replace('fc.0.', 'fc.'), v) for k, v in sd.items())
save({'state_dict': plain, 'class_to_idx': {f: i for i, f in enumerate(folders)}}, 'plain-head')
model = models.resnet18()
model.fc = nn.Sequential(nn.Linear(512, 102))
model.load_state_dict(sd)
save({'model': model, 'epoch': 7}, 'full-module')
torch.jit.save(torch.jit.script(model), d + '/scripted.pth')
save({'state_dict': sd, 'best_acc': numpy.float64(0.5)}, 'numpy-extra')
# A float beside a payload: torch 1.13's safe reader falls back to the allow-listed unpickler for the float.
class Payload:
    def __reduce__(self):
        return (open, (d + '/payload-ran', 'w'))
save({'state_dict': sd, 'loss': 0.25, 'payload': Payload()}, 'payload')
# Other heads, with the user's own logits for a fixed input: a Linear put in place of MobileNetV3's whole
# classifier (its head is classifier.3), and SqueezeNet's 1x1 Conv2d classifier; both scaled up from the tiny
# logits of their initialisation, which any tolerance would accept.
torch.manual_seed(1)
mobilenet = models.mobilenet_v3_small(num_classes=5)
mobilenet.classifier = nn.Linear(576, 5)
squeezenet = models.squeezenet1_1(num_classes=4)
with torch.no_grad():
    mobilenet.classifier.weight.mul_(100)
    squeezenet.classifier[1].weight.mul_(100)
x = torch.rand(2, 3, 64, 64)
x.numpy().astype('<f4').tofile(d + '/other-input.f32')
for name, model in (('mobilenet_v3_small', mobilenet), ('squeezenet1_1', squeezenet)):
    with torch.no_grad():
        # BatchNorm statistics from the input itself: with the initial ones MobileNet's features vanish.
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = None
        model.train()(x)
        model.eval()(x).numpy().astype('<f4').tofile(d + '/' + name + '.logits.f32')
    save(model.state_dict(), name)
two = collections.OrderedDict((k, v) for k, v in sd.items() if not k.startswith('fc.'))
two.update({'fc.0.weight': torch.zeros(256, 512), 'fc.0.bias': torch.zeros(256),
            'fc.2.weight': torch.zeros(102, 256), 'fc.2.bias': torch.zeros(102)})
save({'state_dict': two}, 'two-layer-head')
`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd: ROOT, maxBuffer: 1 << 24 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs the jobs two at a time: the machine has two cores and each export spends ~1 s in torch. */
async function pool<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all([worker(), worker()]);
  return results;
}

function readF32(file: string): Float32Array {
  const bytes = readFileSync(file);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex');
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  assert.is(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (!(Math.abs(actual[i] - expected[i]) <= tolerance)) {
      assert.unreachable(`${what}: index ${i} is ${actual[i]}, expected ${expected[i]} (tolerance ${tolerance})`);
    }
  }
}

/** Asserts a failed export: exit status 1, exactly one line on stderr matching `pattern`, no output folder. */
function assertUserError(result: Run, pattern: RegExp, out: string): void {
  assert.is(result.code, 1, `exit status (stderr: ${result.stderr})`);
  const lines = result.stderr.trimEnd().split('\n');
  assert.is(lines.length, 1, `expected one line on stderr, got:\n${result.stderr}`);
  assert.match(lines[0], /^export_onnx: error: /);
  assert.match(lines[0], pattern);
  assert.not.ok(existsSync(out), `${out} was left behind`);
}

interface Form {
  checkpoint: string;
  args?: string[];
  head: string;
  where: string;
}

// Every form must give the demo's logits bit for bit: same weights, same seeded reference batch.
const FORMS: Record<string, Form> = {
  demo: { checkpoint: 'demo.pth', args: ['--demo'], head: 'fc: Sequential(Linear)', where: "['state_dict']" },
  bare: { checkpoint: 'bare.pth', args: ['--labels', 'list.json'], head: 'fc: Sequential(Linear)', where: '(bare)' },
  modelStateDict: { checkpoint: 'model-state-dict.pth', head: 'fc: Sequential(Linear)', where: "['model_state_dict']" },
  modelKey: { checkpoint: 'model-key.pth', args: ['--labels', 'index-map.json'], head: 'fc: Sequential(Linear)', where: "['model']" },
  dataParallel: {
    checkpoint: 'data-parallel.pth',
    args: ['--labels', 'cat_to_name.json', '--class-to-idx', 'class_to_idx.json'],
    head: 'fc: Sequential(Linear)',
    where: "['state_dict']",
  },
  legacy: { checkpoint: 'legacy.pth', head: 'fc: Sequential(Linear)', where: '(bare)' },
  lightning: { checkpoint: 'lightning.pth', head: 'fc: Sequential(Linear)', where: "['state_dict']" },
  noBatchesTracked: { checkpoint: 'no-batches-tracked.pth', head: 'fc: Sequential(Linear)', where: '(bare)' },
  plainHead: { checkpoint: 'plain-head.pth', args: ['--labels', 'cat_to_name.json'], head: 'fc: Linear', where: "['state_dict']" },
  fullModule: { checkpoint: 'full-module.pth', args: ['--trust-checkpoint'], head: 'fc: Sequential(Linear)', where: "['model']" },
  numpyExtra: { checkpoint: 'numpy-extra.pth', args: ['--trust-checkpoint'], head: 'fc: Sequential(Linear)', where: "['state_dict']" },
};

interface Context {
  dir: string;
  exports: Record<string, Run>;
  folders: string[];
  names: string[];
}

const test = suite<Context>('export_onnx', { dir: '', exports: {}, folders: [], names: [] });

test.before(async (ctx) => {
  ctx.dir = mkdtempSync(path.join(os.tmpdir(), 'export-onnx-'));
  const demo = await run(PYTHON, [path.join(ROOT, 'tools/demo_checkpoint.py'), '--out', path.join(ctx.dir, 'demo.pth')]);
  assert.is(demo.code, 0, demo.stderr);
  const forms = await run(PYTHON, ['-c', MAKE_FORMS, ctx.dir]);
  assert.is(forms.code, 0, forms.stderr);

  ctx.names = Array.from({ length: NUM_CLASSES }, (_, i) => `flower ${i}`);
  ctx.folders = Array.from({ length: NUM_CLASSES }, (_, i) => String(i + 1)).sort();
  const write = (name: string, value: unknown): void => writeFileSync(path.join(ctx.dir, name), JSON.stringify(value));
  write('list.json', ctx.names);
  // Keys out of order: the map is read by index, not by position.
  write('index-map.json', Object.fromEntries(ctx.names.map((n, i) => [String(i), n]).reverse()));
  // cat_to_name.json names folder f "name of f"; class_to_idx gives each folder its output index.
  write('cat_to_name.json', Object.fromEntries(ctx.folders.map((f) => [f, `name of ${f}`])));
  write('class_to_idx.json', Object.fromEntries(ctx.folders.map((f, i) => [f, i])));

  const names = Object.keys(FORMS);
  const results = await pool(
    names.map((name) => () => {
      const form = FORMS[name];
      const args = [EXPORTER, '--checkpoint', path.join(ctx.dir, form.checkpoint), '--out', path.join(ctx.dir, `out-${name}`)];
      return run(PYTHON, [...args, ...(form.args ?? []).map((a) => (a.endsWith('.json') ? path.join(ctx.dir, a) : a))]);
    }),
  );
  names.forEach((name, i) => (ctx.exports[name] = results[i]));
});

test.after((ctx) => {
  rmSync(ctx.dir, { recursive: true, force: true });
});

test('every checkpoint form exports, naming where the state dict was and the head form', (ctx) => {
  for (const [name, form] of Object.entries(FORMS)) {
    const result = ctx.exports[name];
    assert.is(result.code, 0, `${name}: ${result.stderr}`);
    assert.ok(result.stdout.includes(`head ${form.head}, state dict ${form.where}`), `${name}: ${result.stdout}`);
    assert.equal(readdirSync(path.join(ctx.dir, `out-${name}`)).sort(), OUTPUTS, `${name}: output files`);
  }
});

test('every checkpoint form gives the same PyTorch logits, bit for bit', (ctx) => {
  const expected = readFileSync(path.join(ctx.dir, 'out-demo/reference_logits.f32'));
  for (const name of Object.keys(FORMS)) {
    const logits = readFileSync(path.join(ctx.dir, `out-${name}/reference_logits.f32`));
    assert.ok(logits.equals(expected), `${name}: logits differ from the demo checkpoint's`);
  }
});

test('export.json and reference.json follow docs/architecture.md', (ctx) => {
  const out = path.join(ctx.dir, 'out-demo');
  const checkpoint = path.join(ctx.dir, 'demo.pth');
  assert.equal(JSON.parse(readFileSync(path.join(out, 'export.json'), 'utf8')), {
    arch: 'resnet18',
    num_classes: NUM_CLASSES,
    image_size: [64, 64],
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    labels: null,
    checkpoint: { path: checkpoint, sha256: sha256(checkpoint) },
    demo: true,
    opset: 14,
  });
  assert.equal(JSON.parse(readFileSync(path.join(out, 'reference.json'), 'utf8')), {
    input: { shape: [3, 3, 64, 64], layout: 'NCHW', file: 'reference_input.f32' },
    logits: { shape: [3, NUM_CLASSES], file: 'reference_logits.f32' },
  });
  assert.is(statSync(path.join(out, 'reference_input.f32')).size, 3 * 3 * 64 * 64 * 4);
  assert.is(statSync(path.join(out, 'reference_logits.f32')).size, 3 * NUM_CLASSES * 4);
  assert.match(ctx.exports.demo.stderr, /UNTRAINED DEMO MODEL/);
  const other = JSON.parse(readFileSync(path.join(ctx.dir, 'out-legacy/export.json'), 'utf8'));
  assert.is(other.demo, false);
});

test('the reference batch is the same seeded, normalised input for every export', (ctx) => {
  const input = readF32(path.join(ctx.dir, 'out-demo/reference_input.f32'));
  const min = input.reduce((a, b) => Math.min(a, b));
  const max = input.reduce((a, b) => Math.max(a, b));
  // Pixels in [0, 1] normalised with ImageNet mean/std span about [-2.12, 2.64].
  assert.ok(min >= -2.12 && min < -2.0 && max <= 2.641 && max > 2.5, `range [${min}, ${max}]`);
  assert.ok(readFileSync(path.join(ctx.dir, 'out-bare/reference_input.f32')).equals(Buffer.from(input.buffer)));
});

test('the demo reference logits differ between the three inputs (a non-degenerate model)', (ctx) => {
  const logits = readF32(path.join(ctx.dir, 'out-demo/reference_logits.f32'));
  const top = [0, 1, 2].map((row) => {
    const values = Array.from(logits.subarray(row * NUM_CLASSES, (row + 1) * NUM_CLASSES));
    return values.indexOf(Math.max(...values));
  });
  assert.ok(new Set(top).size > 1, `every input has top class ${top[0]}`);
});

test('model.onnx runs in onnxruntime with input/logits names, a dynamic batch and PyTorch logits', async (ctx) => {
  const out = path.join(ctx.dir, 'out-demo');
  const session = await ort.InferenceSession.create(path.join(out, 'model.onnx'));
  assert.equal(session.inputNames, ['input']);
  assert.equal(session.outputNames, ['logits']);
  const input = readF32(path.join(out, 'reference_input.f32'));
  const expected = readF32(path.join(out, 'reference_logits.f32'));
  const tolerance = 1e-4 * Math.max(1, ...Array.from(expected, Math.abs));
  const batch3 = await session.run({ input: new ort.Tensor('float32', input, [3, 3, 64, 64]) });
  assert.equal(batch3.logits.dims, [3, NUM_CLASSES]);
  assertClose(batch3.logits.data as Float32Array, expected, tolerance, 'batch of 3');
  const batch1 = await session.run({ input: new ort.Tensor('float32', input.slice(0, 3 * 64 * 64), [1, 3, 64, 64]) });
  assertClose(batch1.logits.data as Float32Array, expected.subarray(0, NUM_CLASSES), tolerance, 'batch of 1');
});

test("other architectures' heads: a Linear replacing the whole classifier, a Conv2d classifier", async (ctx) => {
  const archs: [string, string, number][] = [
    ['mobilenet_v3_small', 'classifier: Linear', 5],
    ['squeezenet1_1', 'classifier.1: Conv2d', 4],
  ];
  const results = await pool(
    archs.map(([arch]) => () =>
      run(PYTHON, [EXPORTER, '--checkpoint', path.join(ctx.dir, `${arch}.pth`), '--arch', arch, '--out', path.join(ctx.dir, `out-${arch}`)]),
    ),
  );
  const input = readF32(path.join(ctx.dir, 'other-input.f32'));
  for (const [i, [arch, head, classes]] of archs.entries()) {
    assert.is(results[i].code, 0, `${arch}: ${results[i].stderr}`);
    assert.ok(results[i].stdout.includes(`${classes} classes, head ${head}`), results[i].stdout);
    // The exported graph answers as the user's own model did, not merely as the rebuilt one.
    const session = await ort.InferenceSession.create(path.join(ctx.dir, `out-${arch}/model.onnx`));
    const output = await session.run({ input: new ort.Tensor('float32', input, [2, 3, 64, 64]) });
    const expected = readF32(path.join(ctx.dir, `${arch}.logits.f32`));
    assert.ok(Math.max(...Array.from(expected, Math.abs)) > 0.1, `${arch}: degenerate fixture logits`);
    assertClose(output.logits.data as Float32Array, expected, 1e-4 * Math.max(1, ...Array.from(expected, Math.abs)), arch);
  }
});

test('labels: a list, an {index: name} map, and cat_to_name.json through either class_to_idx', (ctx) => {
  const labels = (name: string): unknown => JSON.parse(readFileSync(path.join(ctx.dir, `out-${name}/export.json`), 'utf8')).labels;
  assert.equal(labels('bare'), ctx.names);
  assert.equal(labels('modelKey'), ctx.names);
  // Output i is the folder class_to_idx maps to i: folders sort as strings, so output 2 is folder "100".
  const byFolder = ctx.folders.map((f) => `name of ${f}`);
  assert.is(byFolder[2], 'name of 100');
  assert.equal(labels('plainHead'), byFolder);
  assert.equal(labels('dataParallel'), byFolder);
  assert.is(labels('legacy'), null);
});

test('labels that do not fit the model are refused with what to do', async (ctx) => {
  const write = (name: string, value: string): string => {
    writeFileSync(path.join(ctx.dir, name), value);
    return path.join(ctx.dir, name);
  };
  const cases: [string[], RegExp][] = [
    [['--labels', write('short.json', JSON.stringify(ctx.names.slice(1)))], /lists 101 labels but the model has 102 classes/],
    [['--labels', path.join(ctx.dir, 'cat_to_name.json')], /keys \(1\.\.102\) that are not the model's class indices 0\.\.101; .*--class-to-idx/],
    [['--labels', write('numbers.json', JSON.stringify(ctx.names.map((_, i) => i)))], /every label must be a non-empty string, found 0/],
    [['--labels', write('broken.json', '{"0": "rose",')], /broken\.json is not valid UTF-8 JSON/],
    [['--labels', path.join(ctx.dir, 'missing.json')], /labels file not found: .*missing\.json/],
    [['--labels', path.join(ctx.dir, 'cat_to_name.json'), '--class-to-idx', write('bad-cti.json', '["1", "2"]')],
      /class_to_idx from .*bad-cti\.json must map class folder names \(strings\) to indices/],
  ];
  const results = await pool(
    cases.map(([args], i) => () =>
      run(PYTHON, [EXPORTER, '--checkpoint', path.join(ctx.dir, 'bare.pth'), '--out', path.join(ctx.dir, `bad-labels-${i}`), ...args]),
    ),
  );
  cases.forEach(([, pattern], i) => assertUserError(results[i], pattern, path.join(ctx.dir, `bad-labels-${i}`)));
});

test('checkpoint and output errors: one line, exit status 1, nothing written', async (ctx) => {
  const text = path.join(ctx.dir, 'notes.pth');
  writeFileSync(text, 'epoch 7: accuracy 0.93\n');
  const truncated = path.join(ctx.dir, 'truncated.pth');
  writeFileSync(truncated, readFileSync(path.join(ctx.dir, 'demo.pth')).subarray(0, 100_000));
  const demo = path.join(ctx.dir, 'demo.pth');
  const cases: [string[], RegExp][] = [
    [['--checkpoint', path.join(ctx.dir, 'best.pth')], /checkpoint not found: .*best\.pth \(pass CHECKPOINT=/],
    [['--checkpoint', ctx.dir], /checkpoint is a directory/],
    [['--checkpoint', text], /not a PyTorch checkpoint: .*notes\.pth \(expected a file written by torch\.save\)/],
    [['--checkpoint', truncated], /corrupt or truncated checkpoint .*truncated\.pth/],
    [['--checkpoint', path.join(ctx.dir, 'scripted.pth')], /scripted\.pth is a TorchScript archive \(torch\.jit\.save\), not a checkpoint/],
    [['--checkpoint', path.join(ctx.dir, 'full-module.pth')],
      /holds pickled Python objects \(Unsupported class torchvision\.models\.resnet\.ResNet\); .*--trust-checkpoint/],
    [['--checkpoint', path.join(ctx.dir, 'numpy-extra.pth')], /holds pickled Python objects \(.*numpy.*\); .*--trust-checkpoint/],
    [['--checkpoint', path.join(ctx.dir, 'payload.pth')], /holds pickled Python objects \(Unsupported class io\.open\)/],
    [['--checkpoint', demo, '--arch', 'resnet34'],
      /does not fit --arch resnet34: \d+ missing: layer1\.2\.conv1\.weight, .*; it fits --arch resnet18$/],
    [['--checkpoint', demo, '--arch', 'resnet19'], /unknown --arch 'resnet19'; did you mean resnet18/],
    [['--checkpoint', path.join(ctx.dir, 'no-state-dict.pth')],
      /no state dict in checkpoint .*: its top-level keys are 'state_dict', 'epoch' \('state_dict' holds a list\)/],
    [['--checkpoint', path.join(ctx.dir, 'headless.pth')],
      /fits --arch resnet18 except its classifier: expected fc\.weight or fc\.0\.weight, found nothing under fc$/],
    [['--checkpoint', path.join(ctx.dir, 'two-layer-head.pth')], /head fc has several layers \(fc\.0, fc\.2\)/],
  ];
  const results = await pool(
    cases.map(([args], i) => () => run(PYTHON, [EXPORTER, ...args, '--out', path.join(ctx.dir, `bad-${i}`)])),
  );
  cases.forEach(([, pattern], i) => assertUserError(results[i], pattern, path.join(ctx.dir, `bad-${i}`)));
  assert.not.ok(existsSync(path.join(ctx.dir, 'payload-ran')), 'the pickled payload ran');

  // An output path below a file cannot be created, even by root.
  const blocked = path.join(ctx.dir, 'notes.pth', 'out');
  assertUserError(await run(PYTHON, [EXPORTER, '--checkpoint', demo, '--out', blocked]),
    /cannot write to output folder .*notes\.pth\/out: Not a directory/, blocked);
});

test('a failed export leaves an earlier export in the same folder untouched', async (ctx) => {
  const out = path.join(ctx.dir, 'out-legacy');
  const before = OUTPUTS.map((f) => sha256(path.join(out, f)));
  const result = await run(PYTHON, [EXPORTER, '--checkpoint', path.join(ctx.dir, 'full-module.pth'), '--out', out]);
  assert.is(result.code, 1);
  assert.equal(readdirSync(out).sort(), OUTPUTS);
  assert.equal(OUTPUTS.map((f) => sha256(path.join(out, f))), before);
});

test('--image-size HxW exports a non-square input', async (ctx) => {
  const out = path.join(ctx.dir, 'out-48x80');
  const result = await run(PYTHON, [EXPORTER, '--checkpoint', path.join(ctx.dir, 'demo.pth'), '--image-size', '48x80', '--out', out]);
  assert.is(result.code, 0, result.stderr);
  assert.equal(JSON.parse(readFileSync(path.join(out, 'export.json'), 'utf8')).image_size, [48, 80]);
  const session = await ort.InferenceSession.create(path.join(out, 'model.onnx'));
  const input = readF32(path.join(out, 'reference_input.f32'));
  const expected = readF32(path.join(out, 'reference_logits.f32'));
  const output = await session.run({ input: new ort.Tensor('float32', input, [3, 3, 48, 80]) });
  assertClose(output.logits.data as Float32Array, expected, 1e-4 * Math.max(1, ...Array.from(expected, Math.abs)), '48x80');
});

test.run();
