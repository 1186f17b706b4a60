// A process of its own that polls GET /health one request after another, so that the latency it sees is the
// server's and not the test's (whose event loop is busy uploading). Messages from the parent: 'reset' starts a new
// window; 'report' answers {slowest, failures, polls} for the window, once at least one poll of it has finished.
import http from 'node:http';

const url = process.argv[2];
let slowest = 0;
let failures = 0;
let polls = 0;
/** A report asked for before any poll of the window finished: answered after the next one. */
let pending = false;

function report(): void {
  pending = false;
  process.send?.({ slowest, failures, polls });
}

function poll(): void {
  const started = performance.now();
  http
    .get(`${url}/health`, { agent: false }, (res) => {
      res.resume().on('end', () => {
        slowest = Math.max(slowest, performance.now() - started);
        if (res.statusCode !== 200) failures += 1;
        polls += 1;
        if (pending) report();
        setTimeout(poll, 10);
      });
    })
    .on('error', () => {
      failures += 1;
      setTimeout(poll, 10);
    });
}

process.on('message', (message) => {
  if (message === 'reset') [slowest, failures, polls] = [0, 0, 0];
  else if (message === 'report') {
    if (polls > 0) report();
    else pending = true;
  }
});
process.on('disconnect', () => process.exit(0));
poll();
