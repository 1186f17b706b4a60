// The test images shipped with the project (test/fixtures/images: photos, formats/, bad/, with MANIFEST.tsv).
import path from 'node:path';

export const IMAGES = path.join(__dirname, '../fixtures/images');

/** Path of a fixture image, relative to test/fixtures/images (e.g. 'formats/rgb.png'). */
export const image = (name: string): string => path.join(IMAGES, name);
