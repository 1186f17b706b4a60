// The Batcher on its own: batches grow with the queue, a lone job starts at once, aborts, failures and slots.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Batcher, type Settled } from '../../src/engine/batcher';

/** A runner whose batches wait until released; it records each batch it was given. */
function gatedRunner() {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const run = async (jobs: number[]): Promise<Settled<number>[]> => {
    batches.push(jobs);
    const released = new Promise<void>((resolve) => releases.push(resolve));
    for (const w of waiters.filter((x) => batches.length >= x.count)) w.resolve();
    await released;
    return jobs.map((j) => (j < 0 ? { ok: false, error: new Error(`job ${j} failed`) } : { ok: true, value: j * 10 }));
  };
  /** Resolves once the runner has been given `count` batches in all. */
  const started = (count: number) =>
    new Promise<void>((resolve) => (batches.length >= count ? resolve() : waiters.push({ count, resolve })));
  return { run, batches, release: () => releases.shift()?.(), started };
}

test('a lone job starts at once in a batch of one; jobs queued meanwhile form the next batch, up to the limit', async () => {
  const runner = gatedRunner();
  const batcher = new Batcher<number, number>([runner.run], { maxBatch: 3, maxDelayMs: 0 });
  const first = batcher.submit(1);
  await runner.started(1);
  assert.equal(runner.batches, [[1]], 'no waiting for company');
  const rest = [2, 3, 4, 5].map((j) => batcher.submit(j));
  assert.is(batcher.queued, 4);
  runner.release();
  assert.is(await first, 10);
  await runner.started(2);
  assert.equal(runner.batches[1], [2, 3, 4], 'the oldest jobs, at most maxBatch');
  runner.release();
  await runner.started(3);
  runner.release();
  assert.equal(await Promise.all(rest), [20, 30, 40, 50]);
  assert.equal(runner.batches, [[1], [2, 3, 4], [5]]);
});

test('with a delay, a free runner waits for a fuller batch, and a full one starts without waiting', async () => {
  const runner = gatedRunner();
  const batcher = new Batcher<number, number>([runner.run], { maxBatch: 2, maxDelayMs: 60_000 });
  const jobs = [batcher.submit(1), batcher.submit(2)];
  await runner.started(1);
  assert.equal(runner.batches, [[1, 2]], 'the second job completed the batch before the delay');
  runner.release();
  assert.equal(await Promise.all(jobs), [10, 20]);
});

test('each runner takes its own batch: two runners work at once', async () => {
  const a = gatedRunner();
  const b = gatedRunner();
  const batcher = new Batcher<number, number>([a.run, b.run], { maxBatch: 4, maxDelayMs: 0 });
  const first = batcher.submit(1);
  const second = batcher.submit(2);
  await Promise.all([a.started(1), b.started(1)]);
  assert.equal([...a.batches, ...b.batches].sort(), [[1], [2]]);
  a.release();
  b.release();
  assert.equal(await Promise.all([first, second]), [10, 20]);
});

test('a failed job fails alone; a runner that throws fails its whole batch; the queue goes on', async () => {
  let calls = 0;
  const batcher = new Batcher<number, number>([async (jobs) => {
    calls += 1;
    if (jobs.includes(99)) throw new Error('runner broke');
    return jobs.map((j) => (j < 0 ? { ok: false, error: new Error(`job ${j} failed`) } : { ok: true, value: j }));
  }], { maxBatch: 8, maxDelayMs: 0 });
  const outcomes = await Promise.allSettled([batcher.submit(1), batcher.submit(-1), batcher.submit(2)]);
  assert.equal(outcomes.map((o) => o.status), ['fulfilled', 'rejected', 'fulfilled']);
  assert.is(((outcomes[1] as PromiseRejectedResult).reason as Error).message, 'job -1 failed');
  const broken = await Promise.allSettled([batcher.submit(99)]);
  assert.is(((broken[0] as PromiseRejectedResult).reason as Error).message, 'runner broke');
  assert.is(await batcher.submit(3), 3, 'the runner is free again after a failure');
  assert.ok(calls >= 3);
});

test('an abort while queued rejects at once with the reason and the job never runs; an aborted signal never queues', async () => {
  const runner = gatedRunner();
  const batcher = new Batcher<number, number>([runner.run], { maxBatch: 8, maxDelayMs: 0 });
  const holder = batcher.submit(1);
  await runner.started(1);
  const leaving = new AbortController();
  const queued = batcher.submit(2, leaving.signal);
  const reason = new Error('client left');
  leaving.abort(reason);
  await queued.then(() => assert.unreachable('aborted'), (err: unknown) => assert.is(err, reason));
  await batcher.submit(5, AbortSignal.abort(reason)).then(() => assert.unreachable('aborted'), (err: unknown) => assert.is(err, reason));
  const after = batcher.submit(3);
  runner.release();
  await holder;
  await runner.started(2);
  runner.release();
  assert.is(await after, 30);
  assert.equal(runner.batches, [[1], [3]], 'the aborted jobs never reached the runner');
});

/** A gated runner whose running batch takes added jobs until `close()`; late ones come back as retries. */
function growingRunner() {
  const gated = gatedRunner();
  let open = false;
  let batch: number[] = [];
  const offered: number[][] = [];
  return {
    ...gated,
    offered,
    close: () => (open = false),
    runner: {
      run: async (jobs: number[]) => {
        open = true;
        batch = [...jobs];
        const results = await gated.run(jobs);
        // Those added while open ran with the batch; a real runner settles them the same way.
        return [...results, ...batch.slice(jobs.length).map((j) => ({ ok: true as const, value: j * 10 }))];
      },
      add: (jobs: number[]) => {
        offered.push(jobs);
        if (!open) return false;
        batch.push(...jobs);
        return true;
      },
    },
  };
}

test('jobs that arrive while every runner is busy join a running batch that still gathers, up to the limit', async () => {
  const r = growingRunner();
  const batcher = new Batcher<number, number>([r.runner], { maxBatch: 3, maxDelayMs: 0 });
  const first = batcher.submit(1);
  await r.started(1);
  const joined = [batcher.submit(2), batcher.submit(3)];
  assert.is(batcher.queued, 0, 'both joined the running batch');
  const waiting = batcher.submit(4);
  assert.is(batcher.queued, 1, 'the batch was full');
  r.release();
  assert.equal(await Promise.all([first, ...joined]), [10, 20, 30]);
  await r.started(2);
  r.close();
  const late = batcher.submit(5);
  assert.is(batcher.queued, 1, 'a batch past gathering refuses jobs: they wait for a free runner');
  r.release();
  await r.started(3);
  r.release();
  assert.equal(await Promise.all([waiting, late]), [40, 50]);
  assert.equal(r.batches, [[1], [4], [5]], 'run() saw only the jobs it started with');
});

test('a job the running batch took too late goes back to the front of the queue and runs next', async () => {
  let calls = 0;
  let added: number[] = [];
  const batcher = new Batcher<number, number>([{
    run: async (jobs) => {
      calls += 1;
      await new Promise((resolve) => setTimeout(resolve, 20));
      // The batch closed before the added jobs made it: they are settled as retries.
      const late = added.map(() => ({ ok: false as const, error: new Error('closed'), retry: true }));
      added = [];
      return [...jobs.map((j) => ({ ok: true as const, value: j })), ...late];
    },
    add: (jobs) => {
      added.push(...jobs);
      return true;
    },
  }], { maxBatch: 4, maxDelayMs: 0 });
  const answers = await Promise.all([1, 2, 3].map((j) => batcher.submit(j)));
  assert.equal(answers, [1, 2, 3]);
  assert.is(calls, 2, 'the first batch, then the retried jobs together');
});

test('bad options are refused, and a closed batcher takes no new job', async () => {
  assert.throws(() => new Batcher([], { maxBatch: 1, maxDelayMs: 0 }), /at least one runner/);
  assert.throws(() => new Batcher([async () => []], { maxBatch: 0, maxDelayMs: 0 }), /maxBatch/);
  const batcher = new Batcher<number, number>([async (jobs) => jobs.map((j) => ({ ok: true, value: j }))], { maxBatch: 1, maxDelayMs: 0 });
  batcher.close();
  await batcher.submit(1).then(() => assert.unreachable('closed'), (err: Error) => assert.match(err.message, 'closed'));
});

test.run();
