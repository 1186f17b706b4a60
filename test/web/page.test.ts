// The web page in a real browser (Debian's Chromium, headless, through playwright-core) against the app on a tiny
// model: photos and bad files through the file chooser, drag and drop and paste, at desktop and phone sizes and with
// the keyboard alone, and the token prompt with auth on. What the page shows is compared with the API's own answer
// for the same file; any console error or uncaught exception fails. Screenshots: .cache/test-output/screenshots/.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Model } from '../../src/engine/model';
import { loadPipeline } from '../../src/engine/pipeline';
import { createApp } from '../../src/http/app';
import type { Authenticator } from '../../src/http/auth';
import { healthInfo, runtimeHealth } from '../../src/http/routes/health';
import type { AppConfig, Ready } from '../../src/http/state';
import { appConfig, memoryLogger, postImage, serve, tempDir, writeTinyModel } from '../helpers/app';
import { scopedAuth, TEST_API_KEY } from '../helpers/auth';
import { image } from '../helpers/fixtures';
import { info, tf } from '../helpers/runtime';
import { buildPage } from '../helpers/page';
import { answeredCards, launchBrowser, openPage, screenshot, type Card, type ConsoleWatch } from './browser';

const LABELS = ['daisy', 'dandelion', 'rose', 'sunflower', 'tulip'];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };

let model: Model;
let ready: Ready;
let browser: Browser;

test.before(async () => {
  buildPage();
  const tiny = writeTinyModel(tempDir('page-model'), { classes: LABELS.length, height: 8, width: 8, labels: LABELS });
  const loaded = await loadPipeline(tf, tiny.dir, { maxPixels: 36_000_000, honourExif: false });
  model = loaded.model;
  ready = { pipeline: loaded.pipeline, health: healthInfo(model.metadata, runtimeHealth(info)) };
  browser = await launchBrowser();
});

test.after(async () => {
  await browser?.close();
  model?.dispose();
});

/** The app on a port of its own, with the page opened at `viewport`; fails on console errors the test did not expect. */
async function withPage(
  options: { viewport?: { width: number; height: number }; config?: Partial<AppConfig>; auth?: Authenticator; ready?: Ready },
  body: (page: Page, url: string, watch: ConsoleWatch) => Promise<void>,
): Promise<void> {
  const app = createApp({ config: appConfig(options.config), logger: memoryLogger(), ready: options.ready ?? ready, auth: options.auth });
  const server = await serve(app.koa.callback());
  const { page, watch } = await openPage(browser, server.url, options.viewport ?? DESKTOP);
  try {
    await body(page, server.url, watch);
    assert.equal(watch.problems, [], 'no console error or uncaught exception');
  } finally {
    await page.close();
    await server.close();
  }
}

/** The percentage the page shows for a probability: one decimal. */
const percent = (p: number) => `${(p * 100).toFixed(1)}%`;

/** What the API answers for the same file (with `headers`), as the card should show it. */
async function expectedCard(url: string, file: string, topk = 3, headers: Record<string, string> = {}): Promise<Pick<Card, 'bars' | 'error'>> {
  const form = new FormData();
  form.append('image', new Blob([readFileSync(image(file))]), path.basename(file));
  form.append('topk', String(topk));
  const body = (await (await fetch(`${url}/predict`, { method: 'POST', body: form, headers })).json()) as {
    predictions?: { label: string; probability: number }[];
    error?: { message: string };
  };
  return {
    bars: (body.predictions ?? []).map((p) => ({ label: p.label, percent: percent(p.probability), width: `${p.probability * 100}%` })),
    error: body.error?.message ?? null,
  };
}

/** The card of `file` as compared (`what` names the case); widths are CSS lengths the browser may round. */
function assertCard(card: Card, want: Pick<Card, 'bars' | 'error'>, file: string, what = file): void {
  assert.is(card.name, path.basename(file), `${what}: the file's name`);
  assert.is(card.error, want.error, `${what}: the API's message`);
  assert.equal(card.bars.map(({ label, percent: pct }) => [label, pct]), want.bars.map(({ label, percent: pct }) => [label, pct]), `${what}: labels and percentages`);
  card.bars.forEach((bar, i) => assert.ok(Math.abs(parseFloat(bar.width) - parseFloat(want.bars[i].width)) < 0.01, `${what}: bar ${i} is ${bar.width} wide`));
  if (want.error === null) assert.match(card.status, /^Answered in \d+ ms$/);
  else assert.match(card.status, /^Refused in \d+ ms \(\d{3} [a-z_]+\)$/);
}

/** A written PNG of the given width. */
function assertScreenshot(file: string, width: number): void {
  const png = readFileSync(file);
  assert.equal([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], `${file} is a PNG`);
  assert.is(png.readUInt32BE(16), width, `${file}: width`);
  assert.ok(statSync(file).size > 10_000, `${file} holds a picture`);
}

test('desktop: a photo and a bad file chosen together: the API\'s top-k as labelled bars, the API\'s error message, the model described', async () => {
  await withPage({}, async (page, url, watch) => {
    watch.expect(415);
    assert.is(await page.title(), 'torch-serve-node');
    await page.waitForFunction(() => document.querySelector('#model')?.textContent?.startsWith('Model '));
    assert.is(await page.textContent('#model'), 'Model tiny.pth (tiny-mean-linear): 5 classes, class names, 8×8 input.');
    assert.ok(await page.isHidden('#demo'), 'a trained model gets no demo notice');
    assert.ok(await page.isHidden('#token-form'), 'no token asked for without auth');

    await page.setInputFiles('#files', [image('p01-sunset.jpg'), image('bad/text.png')]);
    const [photo, bad] = await answeredCards(page, 2);
    assertCard(photo, await expectedCard(url, 'p01-sunset.jpg'), 'p01-sunset.jpg');
    assert.ok(photo.preview, 'the photo is previewed');
    assertCard(bad, await expectedCard(url, 'bad/text.png'), 'bad/text.png');
    assert.ok(bad.status.endsWith('(415 unsupported_format)'), bad.status);
    assert.not.ok(bad.preview, 'a file the browser cannot show has no preview');
    assert.is(photo.bars.map((b) => LABELS.includes(b.label)).filter(Boolean).length, 3, 'labels are the model\'s class names');

    assertScreenshot(await screenshot(page, 'desktop'), DESKTOP.width);
  });
});

test('phone: one column, nothing wider than the screen, the preview above its bars; topk from the page', async () => {
  await withPage({ viewport: PHONE }, async (page, url, watch) => {
    watch.expect(422);
    await page.fill('#topk', '5');
    await page.setInputFiles('#files', [image('p02-squirrel.jpg'), image('bad/truncated.jpg')]);
    const [photo, bad] = await answeredCards(page, 2);
    assertCard(photo, await expectedCard(url, 'p02-squirrel.jpg', 5), 'p02-squirrel.jpg');
    assert.is(photo.bars.length, 5);
    assertCard(bad, await expectedCard(url, 'bad/truncated.jpg', 5), 'bad/truncated.jpg');
    const layout = await page.evaluate(() => {
      const card = document.querySelector('#results > li') as HTMLElement;
      const figure = card.querySelector('figure')!.getBoundingClientRect();
      const bars = card.querySelector('.bars')!.getBoundingClientRect();
      return { scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, figureBottom: figure.bottom, barsTop: bars.top };
    });
    assert.ok(layout.scrollWidth <= layout.innerWidth, `the page is ${layout.scrollWidth} px wide on a ${layout.innerWidth} px screen`);
    assert.ok(layout.figureBottom <= layout.barsTop, 'the preview stands above the bars');
    assertScreenshot(await screenshot(page, 'phone'), PHONE.width);
  });
});

test('keyboard alone: Tab reaches the file chooser (with a visible focus) and the topk field; Enter opens the chooser', async () => {
  await withPage({}, async (page, url) => {
    // Waiting first: Playwright turns on its interception of file choosers only once asked, in a message that the
    // key press could overtake (the chooser would then open unseen).
    const chooserOpened = page.waitForEvent('filechooser');
    const focused = () => page.evaluate(() => document.activeElement?.id ?? '');
    const tabTo = async (id: string) => {
      for (let i = 0; i < 10 && (await focused()) !== id; i++) await page.keyboard.press('Tab');
      assert.is(await focused(), id, `Tab reaches #${id}`);
    };
    await tabTo('topk');
    await page.keyboard.press('Control+A');
    await page.keyboard.type('2');
    await page.keyboard.press('Shift+Tab');
    assert.is(await focused(), 'files', 'the file chooser comes just before topk');
    const outline = await page.evaluate(() => getComputedStyle(document.querySelector('label[for="files"]')!).outlineStyle);
    assert.is(outline, 'solid', 'the focused chooser shows a focus ring on its button');
    await page.keyboard.press('Enter');
    const chooser = await chooserOpened;
    assert.ok(chooser.isMultiple(), 'several photos can be chosen at once');
    await chooser.setFiles(image('p04-tree.jpg'));
    const [card] = await answeredCards(page, 1);
    assertCard(card, await expectedCard(url, 'p04-tree.jpg', 2), 'p04-tree.jpg');
  });
});

test('dropped and pasted photos are sent like chosen ones, newest on top', async () => {
  await withPage({}, async (page, url) => {
    const bytes = (name: string) => [...readFileSync(image(name))];
    const transfer = (name: string) =>
      page.evaluateHandle(([fileName, data]) => {
        const files = new DataTransfer();
        files.items.add(new File([new Uint8Array(data)], fileName, { type: 'image/jpeg' }));
        return files;
      }, [name, bytes(name)] as const);
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: await transfer('p07-robin.jpg') });
    await answeredCards(page, 1);
    const pasted = await transfer('p12-pagoda.jpg');
    await page.evaluate((clipboardData) => document.dispatchEvent(new ClipboardEvent('paste', { clipboardData, bubbles: true })), pasted);
    const [pagoda, robin] = await answeredCards(page, 2);
    assertCard(pagoda, await expectedCard(url, 'p12-pagoda.jpg'), 'p12-pagoda.jpg');
    assertCard(robin, await expectedCard(url, 'p07-robin.jpg'), 'p07-robin.jpg');
  });
});

test('a file over the upload limit shows the 413 message; with --compat the page names the X-Error-Code', async () => {
  await withPage({ config: { maxUploadBytes: 100_000 } }, async (page, url, watch) => {
    watch.expect(413);
    await page.setInputFiles('#files', image('p10-mountains-large.jpg'));
    const [card] = await answeredCards(page, 1);
    assertCard(card, await expectedCard(url, 'p10-mountains-large.jpg'), 'p10-mountains-large.jpg');
    assert.ok(card.status.endsWith('(413 file_too_large)'), card.status);
  });
  await withPage({ config: { compat: true } }, async (page) => {
    await page.setInputFiles('#files', image('bad/text.png'));
    const [card] = await answeredCards(page, 1);
    assert.is(card.error, 'The server refused this file (unsupported_format).');
    assert.match(card.status, /^Refused in \d+ ms \(200 unsupported_format\)$/);
  });
});

test('the untrained demo model is said plainly', async () => {
  const demo: Ready = { ...ready, health: { ...ready.health, model: { ...ready.health.model, demo: true } } };
  await withPage({ ready: demo }, async (page) => {
    await page.waitForSelector('#demo', { state: 'visible' });
    assert.match(await page.textContent('#demo') ?? '', /This server runs the untrained demo model: its predictions are meaningless\./);
  });
});

test('auth on: the page asks for a token with the API\'s 401 message, shows 401 and 403 answers, and predicts once given a key', async () => {
  const { auth, unscopedToken: unscoped } = await scopedAuth('page-auth');
  await withPage({ auth }, async (page, url, watch) => {
    watch.expect(401, 403);
    await page.waitForFunction(() => document.querySelector('#model')?.textContent?.startsWith('Model '));
    assert.ok(await page.isHidden('#token-form'), '/health is open: nothing asked yet');
    const file = 'p29-marigold.jpg';
    await page.setInputFiles('#files', image(file));
    const none = await expectedCard(url, file);
    let [card] = await answeredCards(page, 1);
    assertCard(card, none, file, `${file} without a token`);
    assert.is(await page.textContent('#token-message'), none.error);
    assert.is(await page.evaluate(() => document.activeElement?.id), 'token', 'the token field has the focus');

    for (const [token, status] of [['not-a-key', 401], [unscoped, 403]] as const) {
      await page.fill('#token', token);
      await page.keyboard.press('Enter');
      const want = await expectedCard(url, file, 3, { Authorization: `Bearer ${token}` });
      await page.waitForSelector('#token-form', { state: 'visible' });
      [card] = await answeredCards(page, 1);
      assertCard(card, want, file, `${file} with a ${status} token`);
      assert.ok(card.status.endsWith(`(${status} ${status === 401 ? 'unauthorized' : 'forbidden'})`), card.status);
      assert.is(await page.textContent('#token-message'), want.error);
    }

    await page.fill('#token', TEST_API_KEY);
    await page.click('#token-form button');
    [card] = await answeredCards(page, 1);
    assertCard(card, await expectedCard(url, file, 3, { Authorization: `Bearer ${TEST_API_KEY}` }), file, `${file} with the key`);
    assert.ok(await page.isHidden('#token-form'));
  });

  await withPage({ auth, config: { authHealth: true } }, async (page, url, watch) => {
    watch.expect(401);
    await page.waitForSelector('#token-form', { state: 'visible' });
    const health = (await (await fetch(`${url}/health`)).json()) as { error: { message: string } };
    assert.is(await page.textContent('#token-message'), health.error.message, 'asked at once when /health needs the token');
    await page.fill('#token', TEST_API_KEY);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.querySelector('#model')?.textContent?.startsWith('Model '));
  });
});

test('the app without a built page: / answers the API\'s 404 message in the browser, and predictions still work', async () => {
  const app = createApp({ config: appConfig(), logger: memoryLogger(), ready, webDir: tempDir('no-page') });
  const server = await serve(app.koa.callback());
  const page = await browser.newPage();
  try {
    const response = await page.goto(server.url);
    assert.is(response?.status(), 404);
    assert.match(await page.textContent('body') ?? '', 'The web page is not built into this server');
    assert.is((await postImage(server.url, readFileSync(image('p04-tree.jpg')))).status, 200);
  } finally {
    await page.close();
    await server.close();
  }
});

test.run();
