// deploy/k8s/ checked for real. Every manifest is validated against the Kubernetes API's schemas (kubernetes-models'
// validate(), generated from the API's OpenAPI spec: types, required fields, quantities) and type-checked against the
// same package's TypeScript interfaces, which the schemas' open objects lack: an unknown or misspelt field fails here
// as `kubectl apply --validate=strict` fails it. Then what ties the manifests to the server and to `make image`:
// probes on /health at the container port, shutdown timings, resources against the measured memory, the image name.
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { Service } from 'kubernetes-models/v1';
import ts from 'typescript';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseAllDocuments } from 'yaml';
import { OPTIONS } from '../../src/config';

const ROOT = path.join(__dirname, '../..');
const DIR = path.join(ROOT, 'deploy/k8s');

interface Manifest {
  file: string;
  doc: Record<string, unknown> & { apiVersion: string; kind: string };
}

/** The API objects deploy/k8s/ may hold: the model that validates each, and its TypeScript interface. */
const KINDS: Record<string, { model: { new (data: never): { validate(): void } }; types: string; name: string }> = {
  'apps/v1 Deployment': { model: Deployment, types: 'kubernetes-models/apps/v1/Deployment', name: 'IDeployment' },
  'v1 Service': { model: Service, types: 'kubernetes-models/v1/Service', name: 'IService' },
  'policy/v1 PodDisruptionBudget': { model: PodDisruptionBudget, types: 'kubernetes-models/policy/v1/PodDisruptionBudget', name: 'IPodDisruptionBudget' },
  'autoscaling/v2 HorizontalPodAutoscaler': { model: HorizontalPodAutoscaler, types: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler', name: 'IHorizontalPodAutoscaler' },
};
const kindOf = (m: Manifest) => `${m.doc.apiVersion} ${m.doc.kind}`;

function manifests(): Manifest[] {
  return readdirSync(DIR)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((file) =>
      parseAllDocuments(readFileSync(path.join(DIR, file), 'utf8')).map((parsed) => {
        assert.equal(parsed.errors.map(String), [], `${file}: YAML errors`);
        assert.equal(parsed.warnings.map(String), [], `${file}: YAML warnings`);
        return { file, doc: parsed.toJS() as Manifest['doc'] };
      }),
    );
}

const ALL = manifests();

/** Type-checks each manifest as an object literal of its interface: excess-property errors name unknown fields. */
function unknownFieldErrors(list: Manifest[]): string[] {
  const virtual = path.join(DIR, '__manifests__.ts');
  const source = list
    .map((m, i) => `import type { ${KINDS[kindOf(m)].name} as T${i} } from '${KINDS[kindOf(m)].types}';\nexport const m${i}: T${i} = ${JSON.stringify(m.doc)};`)
    .join('\n');
  const options: ts.CompilerOptions = { strict: true, noEmit: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, types: [] };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) => (name === virtual ? ts.createSourceFile(name, source, version) : getSourceFile(name, version, ...rest));
  const program = ts.createProgram([virtual], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (d.file?.fileName !== virtual || d.start === undefined) return `${d.file?.fileName ?? 'compiler'}: ${message}`;
    // Manifest i is on lines 2i (its import) and 2i + 1 (its literal).
    const m = list[Math.floor(d.file.getLineAndCharacterOfPosition(d.start).line / 2)];
    return `${m.file} (${m.doc.kind}): ${message}`;
  });
}

function only(kind: string): Record<string, any> {
  const found = ALL.filter((m) => m.doc.kind === kind);
  assert.is(found.length, 1, `deploy/k8s/ has exactly one ${kind}`);
  return found[0].doc;
}

/** A CPU or memory quantity in cores or bytes ("500m", "2", "2Gi", "1500M"). */
function quantity(value: string | number): number {
  const match = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(value));
  if (!match) throw new Error(`not a quantity this test reads: ${value}`);
  const scale: Record<string, number> = { m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(match[1]) * (match[2] ? scale[match[2]] : 1);
}

test('every manifest is a known API object that validates against the Kubernetes schemas, with no unknown field', () => {
  assert.ok(ALL.length >= 3, `deploy/k8s/ holds ${ALL.length} objects`);
  for (const m of ALL) {
    const kind = KINDS[kindOf(m)];
    assert.ok(kind, `${m.file}: ${kindOf(m)} is not one of ${Object.keys(KINDS).join(', ')}`);
    try {
      new kind.model(m.doc as never).validate();
    } catch (err) {
      assert.unreachable(`${m.file} (${m.doc.kind}) does not validate: ${(err as Error).message}`);
    }
  }
  assert.equal(unknownFieldErrors(ALL), []);
  for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget']) only(kind);
});

test('the schema checks catch what they should: a wrong type, and a misspelt probe field', () => {
  const deployment = structuredClone(ALL.find((m) => m.doc.kind === 'Deployment')!);
  const container = (deployment.doc as Record<string, any>).spec.template.spec.containers[0];
  container.resources.requests.memory = '2 GiB';
  assert.throws(() => new Deployment(deployment.doc as never).validate(), /quantity/);
  container.resources.requests.memory = '2Gi';
  container.readinessProbe.httpGet.paht = container.readinessProbe.httpGet.path;
  const errors = unknownFieldErrors([deployment]);
  assert.ok(errors.length === 1 && errors[0].includes('paht') && errors[0].includes('IHTTPGetAction'), errors.join('\n'));
});

const deployment = () => only('Deployment');
const podSpec = () => deployment().spec.template.spec;
const container = () => {
  const containers = podSpec().containers;
  assert.is(containers.length, 1, 'one container');
  return containers[0];
};
/** The container's env as a map; every variable must be one the server reads (src/config.ts). */
function env(): Record<string, string> {
  const known = new Set(OPTIONS.map((o) => o.env));
  const pairs = (container().env as { name: string; value: string }[]).map((e) => [e.name, e.value] as const);
  for (const [name] of pairs) assert.ok(known.has(name), `${name} is not a server option (src/config.ts): misspelt or renamed?`);
  return Object.fromEntries(pairs);
}
/** The effective value of a server option in the pod: its env, else the image's, else the server's default. */
function setting(name: string): string {
  const image: Record<string, string> = { HOST: '0.0.0.0', PORT: '5012' };
  return env()[name] ?? image[name] ?? OPTIONS.find((o) => o.env === name)!.default!;
}

test('probes ask /health at the container port, which is the server PORT and the image EXPOSE', () => {
  const port = container().ports.find((p: { name?: string }) => p.name === 'http');
  assert.ok(port, 'the container names its port http');
  assert.is(String(port.containerPort), setting('PORT'));
  assert.match(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'), new RegExp(`^EXPOSE ${port.containerPort}$`, 'm'));
  for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    const get = container()[probe]?.httpGet;
    assert.ok(get, `${probe} is an HTTP GET`);
    assert.is(get.path, '/health', probe);
    assert.ok(get.port === 'http' || get.port === port.containerPort, `${probe} asks port ${get.port}`);
    assert.ok((container()[probe].timeoutSeconds ?? 1) <= (container()[probe].periodSeconds ?? 10), `${probe}: timeout within the period`);
  }
  const window = (probe: string) => (container()[probe].periodSeconds ?? 10) * (container()[probe].failureThreshold ?? 3);
  assert.ok(window('startupProbe') >= 60, `the model may take ${window('startupProbe')} s to load, at least a minute`);
  assert.ok(window('livenessProbe') > window('readinessProbe'), 'liveness gives up later than readiness');
  assert.ok(window('readinessProbe') * 1000 <= Number(setting('SHUTDOWN_DRAIN_MS')), 'readiness fails within the drain, before the listener closes');
  const service = only('Service');
  assert.ok(service.spec.ports.some((p: { targetPort: unknown }) => p.targetPort === 'http' || p.targetPort === port.containerPort), 'the Service sends to the container port');
});

test('the grace period exceeds drain + grace, and the pod runs non-root on a read-only root with /tmp writable', () => {
  const drainAndGrace = (Number(setting('SHUTDOWN_DRAIN_MS')) + Number(setting('SHUTDOWN_GRACE_MS'))) / 1000;
  assert.ok(podSpec().terminationGracePeriodSeconds > drainAndGrace, `terminationGracePeriodSeconds ${podSpec().terminationGracePeriodSeconds} > ${drainAndGrace}`);

  const uid = /^USER (\d+)/m.exec(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
  assert.ok(uid && uid !== '0', 'the Dockerfile sets a numeric non-root USER');
  assert.is(podSpec().securityContext.runAsNonRoot, true);
  assert.is(String(podSpec().securityContext.runAsUser), uid, "runAsUser is the image's USER");
  assert.is(container().securityContext.readOnlyRootFilesystem, true);
  assert.is(container().securityContext.allowPrivilegeEscalation, false);
  const tmp = container().volumeMounts.find((v: { mountPath: string }) => v.mountPath === '/tmp');
  assert.ok(tmp, '/tmp is mounted (the server writes its session graph under os.tmpdir())');
  assert.ok(podSpec().volumes.find((v: { name: string }) => v.name === tmp.name)?.emptyDir, '/tmp is an emptyDir');
});

test('resources fit the measured memory, the engine threads fit the CPU request', () => {
  // The highest peak RSS of our server in docs/benchmark.md (2 engine threads, under load).
  // The results table: the one whose header has the peak RSS column, up to the first line that is not a table row.
  const lines = readFileSync(path.join(ROOT, 'docs/benchmark.md'), 'utf8').split('\n');
  const start = lines.findIndex((l) => l.startsWith('|') && l.includes('| peak RSS MiB |'));
  assert.ok(start >= 0, 'docs/benchmark.md has a table with a peak RSS column');
  const end = lines.findIndex((l, i) => i > start && !l.startsWith('|'));
  const table = lines.slice(start, end < 0 ? undefined : end);
  const column = table[0].split('|').map((c) => c.trim()).indexOf('peak RSS MiB');
  const peaks = table.filter((l) => l.startsWith('| ours')).map((l) => Number(l.split('|')[column]));
  assert.ok(peaks.length > 0 && peaks.every(Number.isFinite), 'docs/benchmark.md has our peak RSS');
  const peak = Math.max(...peaks) * 2 ** 20;
  const { requests, limits } = container().resources;
  assert.ok(quantity(requests.memory) >= peak, `memory request ${requests.memory} covers the measured peak ${Math.max(...peaks)} MiB`);
  assert.ok(quantity(limits.memory) >= quantity(requests.memory) * 1.25, 'the memory limit leaves room above the request for large images');
  assert.is(Number(setting('THREADS')), quantity(requests.cpu), 'one engine thread per requested core (Node counts the node\'s cores, not the pod\'s)');
  assert.is(setting('WORKERS'), '1', 'one service process per pod: replicas scale out');
});

test('the Service, the PodDisruptionBudget and the autoscaler select the Deployment, whose image is what make image builds', () => {
  const labels = deployment().spec.template.metadata.labels;
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([k, v]) => labels[k] === v);
  assert.ok(selects(deployment().spec.selector.matchLabels), "the Deployment's selector matches its pods");
  assert.ok(selects(only('Service').spec.selector), 'the Service selects the pods');
  assert.ok(selects(only('PodDisruptionBudget').spec.selector.matchLabels), 'the PodDisruptionBudget selects the pods');
  for (const hpa of ALL.filter((m) => m.doc.kind === 'HorizontalPodAutoscaler').map((m) => m.doc as Record<string, any>)) {
    assert.equal(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment().metadata.name });
    assert.ok(hpa.spec.minReplicas >= 2, 'at least two pods, so that a disruption leaves one serving');
  }
  const vars = spawnSync('make', ['-s', '--no-print-directory', 'image-vars'], { cwd: ROOT, encoding: 'utf8' });
  assert.is(vars.status, 0, vars.stderr);
  assert.is(container().image, /^IMAGE=(.*)$/m.exec(vars.stdout)?.[1]);
});

test.run();
