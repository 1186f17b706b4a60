// Prometheus metrics of one app (prom-client, a registry of its own): requests, latency, the engine's queue wait,
// inference time and batch sizes, requests held, the model served, and the process's default metrics.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { PipelineResult } from '../engine/pipeline';
import type { AppState } from './state';

export interface Metrics {
  registry: Registry;
  /** One finished HTTP request; `route` is the matched route or "unmatched" (bounded label values). */
  request(labels: { method: string; route: string; status: number }, seconds: number): void;
  /** One answered image. */
  prediction(timing: PipelineResult['timing']): void;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(state: AppState): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new Counter({ name: 'http_requests_total', help: 'HTTP requests answered, by method, route and status', labelNames: ['method', 'route', 'status'], registers: [registry] });
  const duration = new Histogram({ name: 'http_request_duration_seconds', help: 'Time from request to answer, by method and route', labelNames: ['method', 'route'], buckets: LATENCY_BUCKETS, registers: [registry] });
  const queueWait = new Histogram({ name: 'predict_queue_wait_seconds', help: 'Time an image waited for its batch to start', buckets: LATENCY_BUCKETS, registers: [registry] });
  const inference = new Histogram({ name: 'predict_inference_seconds', help: 'Time of the model call that answered an image (one per batch, counted per image)', buckets: LATENCY_BUCKETS, registers: [registry] });
  const batchSize = new Histogram({ name: 'predict_batch_size', help: 'Images in the model call that answered an image', buckets: [1, 2, 4, 8, 16, 32, 64, 128], registers: [registry] });
  new Gauge({
    name: 'http_requests_in_flight',
    help: 'Prediction requests held (uploading, queued or running)',
    registers: [registry],
    collect() {
      this.set(state.inFlight);
    },
  });
  new Gauge({
    name: 'model_info',
    help: 'The model served (always 1): its name, checkpoint sha256, backend and device',
    labelNames: ['name', 'sha256', 'backend', 'device'],
    registers: [registry],
    collect() {
      this.reset();
      const health = state.ready?.health;
      if (!health) return;
      this.set({ name: health.model.name, sha256: health.model.checkpoint_sha256, backend: health.runtime.backend, device: health.runtime.device }, 1);
    },
  });
  return {
    registry,
    request(labels, seconds) {
      requests.inc({ method: labels.method, route: labels.route, status: String(labels.status) });
      duration.observe({ method: labels.method, route: labels.route }, seconds);
    },
    prediction(timing) {
      if (timing.queuedMs !== undefined) queueWait.observe(timing.queuedMs / 1000);
      inference.observe(timing.inferMs / 1000);
      batchSize.observe(timing.batchSize);
    },
  };
}
