// GET /health: 200 with what is being served once the model is warm; 503 while loading, after a failed load or when stopping.
import path from 'node:path';
import type { Middleware } from 'koa';
import type { ModelMetadata } from '../../engine/model';
import type { RuntimeInfo } from '../../runtime';
import type { AppState } from '../state';

/** What /health reports about the model and the TensorFlow runtime serving it. */
export interface HealthInfo {
  model: {
    name: string;
    arch: string;
    classes: number;
    /** [height, width] in pixels */
    input_size: [number, number];
    labels: 'metadata' | 'indices';
    demo: boolean;
    checkpoint_sha256: string;
  };
  runtime: RuntimeHealth;
}

/** The runtime part of /health (and of the startup log line). */
export interface RuntimeHealth {
  backend: string;
  device: string;
  /** TensorFlow device kinds in use, the kernels' device first. */
  devices: string[];
  binding: string;
  tensorflow: string;
  tfjs: string;
  intra_op_threads: number;
  inter_op_threads: number;
  onednn: boolean;
  /** PackedConv2D's kernels (avx512, avx2, portable) or tensorflow: what runs the model's convolutions. */
  convolutions: string;
}

export function runtimeHealth(info: RuntimeInfo): RuntimeHealth {
  return {
    backend: info.backend,
    device: info.device,
    devices: info.devices,
    binding: info.binding,
    tensorflow: info.tfVersion,
    tfjs: info.tfjsVersion,
    intra_op_threads: info.intraOpThreads,
    inter_op_threads: info.interOpThreads,
    onednn: info.oneDnn,
    convolutions: info.convolutions,
  };
}

export function healthRoute(state: AppState): Middleware {
  return (ctx) => {
    ctx.set('Cache-Control', 'no-store');
    if (state.stopping) {
      ctx.status = 503;
      ctx.body = { status: 'stopping', message: 'The server is shutting down; send new requests to another instance.' };
    } else if (state.failure) {
      ctx.status = 503;
      ctx.body = { status: 'failed', message: 'The model failed to load; the reason is in the server log.' };
    } else if (!state.ready) {
      ctx.status = 503;
      ctx.set('Retry-After', '5');
      ctx.body = { status: 'loading', message: 'The model is loading and warming up; retry shortly.' };
    } else {
      const engine = state.ready.engine?.();
      ctx.body = { status: 'ok', ...state.ready.health, ...(engine ? { engine } : {}) };
    }
  };
}

/** The /health description of a loaded model and of the runtime that serves it. */
export function healthInfo(meta: Readonly<ModelMetadata>, runtime: RuntimeHealth): HealthInfo {
  return {
    model: {
      name: path.basename(meta.source.checkpoint),
      arch: meta.arch,
      classes: meta.num_classes,
      input_size: [meta.image_size[0], meta.image_size[1]],
      labels: meta.labels ? 'metadata' : 'indices',
      demo: meta.source.demo,
      checkpoint_sha256: meta.source.sha256,
    },
    runtime,
  };
}
