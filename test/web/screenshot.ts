// README's picture of the page (docs/page.png): what a fresh clone serves, the untrained demo model, after two photos
// and a file that is not an image, in Chromium at a desktop size; colours reduced to a palette to keep it small.
//
// Usage: node -r tsx/cjs test/web/screenshot.ts OUT.png   (make page-screenshot)
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { loadPipeline } from '../../src/engine/pipeline';
import { createApp } from '../../src/http/app';
import { healthInfo, runtimeHealth } from '../../src/http/routes/health';
import { appConfig, convertedDemoModel, memoryLogger, serve } from '../helpers/app';
import { image } from '../helpers/fixtures';
import { buildPage } from '../helpers/page';
import { info, tf } from '../helpers/runtime';
import { answeredCards, launchBrowser, openPage } from './browser';

const MAX_BYTES = 150_000;

async function main(out: string | undefined): Promise<void> {
  if (!out) throw new Error('usage: node -r tsx/cjs test/web/screenshot.ts OUT.png');
  buildPage();
  const { model, pipeline } = await loadPipeline(tf, convertedDemoModel(), { maxPixels: 36_000_000, honourExif: false });
  const app = createApp({ config: appConfig(), logger: memoryLogger(), ready: { pipeline, health: healthInfo(model.metadata, runtimeHealth(info)) } });
  const server = await serve(app.koa.callback());
  const browser = await launchBrowser();
  try {
    const { page, watch } = await openPage(browser, server.url, { width: 1000, height: 700 });
    watch.expect(415);
    await page.waitForSelector('#demo', { state: 'visible' });
    await page.setInputFiles('#files', [image('p29-marigold.jpg'), image('p02-squirrel.jpg'), image('bad/text.png')]);
    await answeredCards(page, 3);
    if (watch.problems.length > 0) throw new Error(`the page logged errors:\n${watch.problems.join('\n')}`);
    const png = await sharp(await page.screenshot({ fullPage: true })).png({ palette: true, colours: 64, compressionLevel: 9, effort: 10 }).toBuffer();
    if (png.length > MAX_BYTES) throw new Error(`the screenshot is ${png.length} bytes, over ${MAX_BYTES}`);
    writeFileSync(out, png);
    console.log(`${out}: ${png.length} bytes`);
  } finally {
    await browser.close();
    await server.close();
    model.dispose();
  }
}

main(process.argv[2]).catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
