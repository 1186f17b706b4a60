// The web page's build for tests: dist/web/ compiled from src/web/ with the command `make build` runs.
import { execFileSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.join(__dirname, '../..');
let built = false;

/** Builds dist/web/ once per test run, so that no test serves a page older than its sources. */
export function buildPage(): void {
  if (built) return;
  execFileSync('npm', ['run', '--silent', 'build:web'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  built = true;
}
