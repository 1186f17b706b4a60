// The web page in a browser for tests: Debian's Chromium (headless, driven by playwright-core), console errors
// collected, and the page read back as the cards a person sees.
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

const ROOT = path.join(__dirname, '../..');
/** Debian's package; `make test` installs it ($(STAMPS)/chromium). Playwright's own browser download cannot run here. */
export const CHROMIUM = '/usr/bin/chromium';
export const SCREENSHOTS = path.join(ROOT, '.cache/test-output/screenshots');

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: \`make test\` installs Debian's chromium package`);
  // Chromium's sandbox needs user namespaces that a root process in a container does not get.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** The answers a request in the page may get and log as "Failed to load resource" without it being a fault. */
export interface ConsoleWatch {
  /** Console errors and uncaught exceptions, other than the expected refusals. */
  problems: string[];
  /** Statuses of refused requests the test provokes (Chromium logs each as a console error it cannot suppress). */
  expect(...statuses: number[]): void;
}

/**
 * A new page at `viewport` whose console errors and uncaught exceptions are collected. A request the server refuses
 * is logged by Chromium itself ("Failed to load resource: ... status of 415"); those count only when not expected.
 */
export async function openPage(browser: Browser, url: string, viewport: { width: number; height: number }): Promise<{ page: Page; watch: ConsoleWatch }> {
  const page = await browser.newPage({ viewport });
  // Every wait is for something the page does in well under a second; a failure should not take Playwright's 30 s.
  page.setDefaultTimeout(10_000);
  const expected = new Set<number>();
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`uncaught: ${err.stack ?? err.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return;
    const refused = /^Failed to load resource: the server responded with a status of (\d{3})\b/.exec(message.text());
    if (refused && expected.has(Number(refused[1]))) return;
    problems.push(`console ${message.type()}: ${message.text()} (${message.location().url})`);
  });
  await page.goto(url);
  return { page, watch: { problems, expect: (...statuses) => statuses.forEach((s) => expected.add(s)) } };
}

/** What one card shows. */
export interface Card {
  name: string;
  status: string;
  bars: { label: string; percent: string; width: string }[];
  error: string | null;
  preview: boolean;
}

/** Waits until the page shows `count` cards, none still waiting for its answer, and reads them, top first. */
export async function answeredCards(page: Page, count: number): Promise<Card[]> {
  await page.waitForFunction(
    (n) => document.querySelectorAll('#results > li').length === n && document.querySelectorAll('#results > li[aria-busy]').length === 0,
    count,
  );
  // No named functions inside: tsx would wrap them in a helper that the page does not have.
  return page.$$eval('#results > li', (items) =>
    items.map((li) => {
      const error = li.querySelector('.error') as HTMLElement;
      return {
        name: li.querySelector('.name')?.textContent ?? '',
        status: li.querySelector('.status')?.textContent ?? '',
        bars: [...li.querySelectorAll('.bars > li')].map((bar) => ({
          label: bar.querySelector('.label')?.textContent ?? '',
          percent: bar.querySelector('.pct')?.textContent ?? '',
          width: (bar.querySelector('.fill') as HTMLElement).style.width,
        })),
        error: error.hidden ? null : error.textContent,
        preview: !(li.querySelector('.preview') as HTMLElement).hidden,
      };
    }),
  );
}

/** A screenshot of the whole page under .cache/test-output/screenshots/; returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
