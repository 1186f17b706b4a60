// The test images shipped with the project (test/fixtures/images: photos, formats/, bad/, with MANIFEST.tsv).
import { readdirSync } from 'node:fs';
import path from 'node:path';

export const IMAGES = path.join(__dirname, '../fixtures/images');

/** Path of a fixture image, relative to test/fixtures/images (e.g. 'formats/rgb.png'). */
export const image = (name: string): string => path.join(IMAGES, name);

/** The test photos (p01-...jpg, ...png) in name order, as paths. */
export function photoPaths(): string[] {
  return readdirSync(IMAGES)
    .filter((f) => /^p\d+-.*\.(jpg|png)$/.test(f))
    .sort()
    .map((f) => path.join(IMAGES, f));
}
