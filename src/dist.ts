// dist/, where the build puts what the server reads besides its own code: the web page (dist/web/) and the native
// addon (dist/native/). This module runs either compiled (dist/src/) or from the sources through tsx (src/); both
// find the same folder.
import path from 'node:path';

const up = path.resolve(__dirname, '..');
export const DIST_DIR = path.basename(up) === 'dist' ? up : path.join(up, 'dist');
