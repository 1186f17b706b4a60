// GET / and its assets: the web page `make build` compiles into dist/web/, served from a fixed list of files (no path
// from the request ever reaches the file system), with a strict Content-Security-Policy and revalidated caching.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Middleware } from 'koa';
import { DIST_DIR } from '../../dist';
import { ServiceError } from '../../errors';

/** URL path -> file under the page's folder, and its Content-Type. */
const FILES: Readonly<Record<string, { file: string; type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/assets/page.js': { file: 'assets/page.js', type: 'text/javascript; charset=utf-8' },
  '/assets/style.css': { file: 'assets/style.css', type: 'text/css; charset=utf-8' },
  '/assets/icon.svg': { file: 'assets/icon.svg', type: 'image/svg+xml' },
};

export const PAGE_PATHS: readonly string[] = Object.keys(FILES);

/**
 * Scripts and styles from this origin only, no inline code; previews are blob: URLs of the chosen files; requests
 * go to this origin; no framing, forms or base URL.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** dist/web/, where the build puts the page. */
export const WEB_DIR = path.join(DIST_DIR, 'web');

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The page's files read from `dir`, or the first one missing (relative to `dir`): the page is not built. */
export function loadPage(dir: string): { assets: Map<string, Asset> } | { missing: string } {
  const assets = new Map<string, Asset>();
  for (const [urlPath, { file, type }] of Object.entries(FILES)) {
    let body: Buffer;
    try {
      body = readFileSync(path.join(dir, file));
    } catch {
      return { missing: file };
    }
    assets.set(urlPath, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return { assets };
}

/**
 * Serves the allow-listed files; clients revalidate every time (`no-cache`) and get 304 while their copy is current.
 * Without a built page every path answers 404 with the command that builds it.
 */
export function pageRoute(page: ReturnType<typeof loadPage>): Middleware {
  return (ctx) => {
    if ('missing' in page) {
      throw new ServiceError(404, 'not_found', `The web page is not built into this server (its ${page.missing} is missing): run \`make build\` or \`npm run build\`; the API works without it.`);
    }
    const asset = page.assets.get(ctx.path) as Asset;
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', asset.etag);
    ctx.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    ctx.set('X-Content-Type-Options', 'nosniff');
    ctx.set('Referrer-Policy', 'no-referrer');
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.type = asset.type;
    ctx.body = asset.body;
  };
}
