// The benchmark's arithmetic and answer check: nearest-rank percentiles, merging slices, the original JSON shape.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parsePredictions, percentile, summarize } from '../../bench/load';

test('percentile is nearest-rank over an ascending list', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.is(percentile(values, 50), 50);
  assert.is(percentile(values, 90), 90);
  assert.is(percentile(values, 99), 99);
  assert.is(percentile([7], 99), 7);
  assert.is(percentile([1, 2, 3], 50), 2);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('summarize merges slices: throughput over the summed busy time, percentiles over all requests, and each slice on its own', () => {
  const result = summarize(4, [
    { latencies: [10, 30], errors: 0, seconds: 1, busy: { answers: 1, seconds: 0.5 }, clientCpuMs: 2 },
    { latencies: [20, 40, 50, 60], errors: 1, seconds: 2, busy: { answers: 2, seconds: 1.5 }, clientCpuMs: 4, firstError: 'HTTP 500: boom' },
  ]);
  assert.equal(
    { ...result },
    {
      concurrency: 4,
      requests: 6,
      errors: 1,
      seconds: 3,
      throughput: 1.5,
      p50: 30,
      p90: 60,
      p99: 60,
      slices: [{ throughput: 2, p50: 10, p99: 30 }, { throughput: 4 / 3, p50: 40, p99: 60 }],
      clientCpuMsPerRequest: 1,
      firstError: 'HTTP 500: boom',
    },
  );
});

test('parsePredictions accepts the original answer and returns its predictions', () => {
  const text = '{"predictions":[{"label":"3","probability":0.5},{"label":"1","probability":0.25}],"success":true}';
  assert.equal(parsePredictions(text), [
    { label: '3', probability: 0.5 },
    { label: '1', probability: 0.25 },
  ]);
});

test('parsePredictions refuses answers that differ from the original shape', () => {
  const wrong = [
    '{"success":false}',
    '{"success":true,"predictions":[]}',
    '{"success":true,"predictions":[{"label":3,"probability":0.5}]}',
    '{"success":true,"predictions":[{"label":"3","probability":"0.5"}]}',
    '{"success":true,"predictions":[{"label":"3","probability":0.5,"index":3}]}',
  ];
  for (const text of wrong) assert.throws(() => parsePredictions(text), /not the original answer shape/, text);
});

test.run();
