// The page at /: photos chosen, dropped or pasted are each sent alone to POST /predict, and each card shows the
// preview beside the top-k as labelled bars, or the API's own error message. The model's facts come from GET /health.

interface Prediction {
  label: string;
  probability: number;
}

interface ModelInfo {
  name: string;
  arch: string;
  classes: number;
  input_size: [number, number];
  labels: 'metadata' | 'indices';
  demo: boolean;
}

/** What the page makes of one answer: predictions, or a message to show as it is. */
type Outcome = { ok: true; predictions: Prediction[] } | { ok: false; status: number; code: string | undefined; message: string };

const TOKEN_KEY = 'torch-serve-node token';

function byId<T extends HTMLElement>(id: string, type: new () => T): T {
  const found = document.getElementById(id);
  if (!(found instanceof type)) throw new Error(`the page has no #${id} of the expected kind`);
  return found;
}

const ui = {
  model: byId('model', HTMLParagraphElement),
  demo: byId('demo', HTMLParagraphElement),
  tokenForm: byId('token-form', HTMLFormElement),
  tokenMessage: byId('token-message', HTMLParagraphElement),
  token: byId('token', HTMLInputElement),
  drop: byId('drop', HTMLElement),
  files: byId('files', HTMLInputElement),
  topk: byId('topk', HTMLInputElement),
  results: byId('results', HTMLOListElement),
  card: byId('card', HTMLTemplateElement),
  bar: byId('bar', HTMLTemplateElement),
};

/** The token kept for this tab; a browser that refuses storage (a privacy setting) throws, and the page goes on without. */
function stored(write?: string): string {
  try {
    if (write !== undefined) sessionStorage.setItem(TOKEN_KEY, write);
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return write ?? '';
  }
}

let token = stored();
/** What to do again once the user gives a (new) token: requests that were answered 401 or 403. */
let awaitingToken: (() => void)[] = [];

const authHeaders = (): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});

/** The percentage shown beside each bar (the browser test formats the API's probabilities the same way). */
function percent(probability: number): string {
  return `${(probability * 100).toFixed(1)}%`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

async function readJson(response: Response): Promise<unknown> {
  if (!(response.headers.get('Content-Type') ?? '').includes('json')) return undefined;
  try {
    return (await response.json()) as unknown;
  } catch {
    return undefined;
  }
}

/** The API's error answer as the page shows it: its message; with --compat only the X-Error-Code header says why. */
function failure(response: Response, body: unknown): Outcome & { ok: false } {
  const error = isObject(body) && isObject(body.error) ? body.error : undefined;
  if (error && typeof error.message === 'string') {
    return { ok: false, status: response.status, code: typeof error.code === 'string' ? error.code : undefined, message: error.message };
  }
  const code = response.headers.get('X-Error-Code') ?? undefined;
  const message = code
    ? `The server refused this file (${code}).`
    : `The server answered ${response.status} ${response.statusText} without an error message.`;
  return { ok: false, status: response.status, code, message };
}

function askForToken(message: string, retry: () => void): void {
  awaitingToken.push(retry);
  ui.tokenMessage.textContent = message;
  if (ui.tokenForm.hidden) {
    ui.tokenForm.hidden = false;
    ui.token.value = '';
    ui.token.focus();
  }
}

ui.tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  token = stored(ui.token.value.trim());
  ui.tokenForm.hidden = true;
  const retries = awaitingToken;
  awaitingToken = [];
  for (const retry of retries) retry();
});

function showModel(model: ModelInfo): void {
  const [height, width] = model.input_size;
  const labels = model.labels === 'metadata' ? 'class names' : 'class numbers as labels';
  ui.model.textContent = `Model ${model.name} (${model.arch}): ${model.classes} classes, ${labels}, ${height}×${width} input.`;
  ui.demo.hidden = !model.demo;
  ui.topk.max = String(model.classes);
  if (Number(ui.topk.value) > model.classes) ui.topk.value = String(model.classes);
}

async function loadModel(): Promise<void> {
  let response: Response;
  try {
    response = await fetch('health', { headers: authHeaders(), cache: 'no-store' });
  } catch (err) {
    ui.model.textContent = `The server could not be reached (${String(err)}).`;
    return;
  }
  const body = await readJson(response);
  if (response.ok && isObject(body) && isObject(body.model)) {
    showModel(body.model as unknown as ModelInfo);
  } else if (response.status === 401 || response.status === 403) {
    const { message } = failure(response, body);
    ui.model.textContent = 'The model is described once the server has a token.';
    askForToken(message, () => void loadModel());
  } else {
    ui.model.textContent = isObject(body) && typeof body.message === 'string' ? body.message : `The server answered ${response.status} for its health.`;
    // Loading is worth waiting for; a failed load or a shutdown is not.
    if (isObject(body) && body.status === 'loading') {
      const seconds = Number(response.headers.get('Retry-After')) || 5;
      setTimeout(() => void loadModel(), seconds * 1000);
    }
  }
}

async function predict(file: File, topk: string): Promise<{ outcome: Outcome; ms: number }> {
  const form = new FormData();
  form.append('image', file, file.name || 'pasted image');
  if (topk !== '') form.append('topk', topk);
  const started = performance.now();
  let response: Response;
  try {
    response = await fetch('predict', { method: 'POST', body: form, headers: authHeaders() });
  } catch (err) {
    return { outcome: { ok: false, status: 0, code: undefined, message: `The server could not be reached (${String(err)}).` }, ms: performance.now() - started };
  }
  const body = await readJson(response);
  const ms = performance.now() - started;
  if (response.ok && isObject(body) && body.success === true && Array.isArray(body.predictions)) {
    return { outcome: { ok: true, predictions: body.predictions as Prediction[] }, ms };
  }
  return { outcome: failure(response, body), ms };
}

/** One photo's card: preview, name, then its bars or its error; sends the photo and fills itself in. */
function addCard(file: File): HTMLLIElement {
  const card = ui.card.content.firstElementChild?.cloneNode(true);
  if (!(card instanceof HTMLLIElement)) throw new Error('the card template is broken');
  const part = <T extends Element>(selector: string) => card.querySelector(selector) as T;
  const preview = part<HTMLImageElement>('.preview');
  const status = part<HTMLParagraphElement>('.status');
  const bars = part<HTMLOListElement>('.bars');
  const error = part<HTMLParagraphElement>('.error');
  part<HTMLElement>('.name').textContent = file.name || 'pasted image';

  const url = URL.createObjectURL(file);
  preview.alt = `Preview of ${file.name || 'the pasted image'}`;
  preview.addEventListener('load', () => URL.revokeObjectURL(url), { once: true });
  // A file the browser cannot show (not an image, or a format it lacks) still goes to the server, which says why.
  preview.addEventListener('error', () => {
    URL.revokeObjectURL(url);
    preview.hidden = true;
    card.classList.add('no-preview');
  }, { once: true });
  preview.src = url;

  const run = async () => {
    card.classList.remove('failed', 'done');
    card.setAttribute('aria-busy', 'true');
    status.textContent = 'Sending…';
    bars.replaceChildren();
    error.hidden = true;
    const { outcome, ms } = await predict(file, ui.topk.value.trim());
    card.removeAttribute('aria-busy');
    const took = `${Math.round(ms)} ms`;
    if (outcome.ok) {
      card.classList.add('done');
      status.textContent = `Answered in ${took}`;
      bars.replaceChildren(...outcome.predictions.map(bar));
      return;
    }
    card.classList.add('failed');
    status.textContent = `Refused in ${took}${outcome.status ? ` (${outcome.status}${outcome.code ? ` ${outcome.code}` : ''})` : ''}`;
    error.textContent = outcome.message;
    error.hidden = false;
    if (outcome.status === 401 || outcome.status === 403) askForToken(outcome.message, () => void run());
  };
  void run();
  return card;
}

function bar(prediction: Prediction): HTMLLIElement {
  const item = ui.bar.content.firstElementChild?.cloneNode(true);
  if (!(item instanceof HTMLLIElement)) throw new Error('the bar template is broken');
  (item.querySelector('.label') as HTMLElement).textContent = prediction.label;
  (item.querySelector('.pct') as HTMLElement).textContent = percent(prediction.probability);
  // Set through the CSSOM: the page's Content-Security-Policy allows no inline style attributes.
  (item.querySelector('.fill') as HTMLElement).style.width = `${Math.min(100, Math.max(0, prediction.probability * 100))}%`;
  return item;
}

function addFiles(files: Iterable<File>): void {
  const cards = [...files].map(addCard);
  // The newest photos on top, in the order they were given.
  ui.results.prepend(...cards);
}

ui.files.addEventListener('change', () => {
  addFiles(ui.files.files ?? []);
  // Choosing the same photo again must fire `change` again.
  ui.files.value = '';
});

// The whole page takes dropped photos; without preventing the default the browser would open the file instead.
document.addEventListener('dragover', (event) => {
  event.preventDefault();
  ui.drop.classList.add('over');
});
document.addEventListener('dragleave', (event) => {
  if (event.relatedTarget === null) ui.drop.classList.remove('over');
});
document.addEventListener('drop', (event) => {
  event.preventDefault();
  ui.drop.classList.remove('over');
  addFiles(event.dataTransfer?.files ?? []);
});
// Pasting text (a token) works as usual; only pasted files are taken.
document.addEventListener('paste', (event) => {
  const files = [...(event.clipboardData?.files ?? [])];
  if (files.length === 0) return;
  event.preventDefault();
  addFiles(files);
});

void loadModel();
