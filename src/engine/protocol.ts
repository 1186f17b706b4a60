// Messages between the worker pool (main thread) and its workers, and how errors cross the thread boundary.
import type { MessagePort } from 'node:worker_threads';
import { ServiceError, type ErrorCode } from '../errors';
import type { RuntimeInfo } from '../runtime';
import type { IdleCoreLending } from '../tf-ops';
import type { Settled } from './batcher';
import type { ModelMetadata } from './model';
import type { PipelineResult } from './pipeline';

/** What a worker needs to load the model: the folder (for messages), its verified metadata and the SavedModel. */
export interface WorkerSetup {
  modelDir: string;
  metadata: ModelMetadata;
  sessionDir: string;
  device: 'cpu' | 'gpu';
  maxPixels: number;
  honourExif: boolean;
  decodeTimeoutMs: number;
  /** Where the pool sends jobs that join the running batch (MoreJobs); the worker reads it between images. */
  more: MessagePort;
  /** When this worker's convolutions may use an idle core (tf-ops.ts lendIdleCore): its slot sets it busy or idle. */
  lending?: IdleCoreLending & { slot: number };
}

export interface WireJob {
  /** The upload's bytes in a buffer of their own (transferred, not copied). */
  bytes: ArrayBuffer;
  topk: number;
}

export type ToWorker = { type: 'batch'; id: number; jobs: WireJob[] };

/** Jobs for batch `id` if it still gathers; the worker drops them once its model call began (the pool retries them). */
export interface MoreJobs {
  id: number;
  jobs: WireJob[];
}

export type WireError =
  | { kind: 'service'; status: number; code: ErrorCode; message: string; expose: boolean; headers: Record<string, string> }
  | { kind: 'error'; name: string; message: string; stack?: string };

export type FromWorker =
  | { type: 'ready'; runtime: RuntimeInfo }
  /** Job `index` of batch `id` starts decoding; `selfTimed`: its decoder enforces the time budget itself. */
  | { type: 'decoding'; id: number; index: number; selfTimed: boolean }
  /** Batch `id` takes no more jobs: its model call begins. */
  | { type: 'inferring'; id: number }
  | { type: 'failed'; error: WireError }
  /** One result per job the batch took, in order: fewer than were sent when MoreJobs came too late. */
  | { type: 'results'; id: number; results: ({ ok: true; value: PipelineResult } | { ok: false; error: WireError })[]; tensors: number };

export function toWire(err: unknown): WireError {
  if (err instanceof ServiceError) {
    return { kind: 'service', status: err.status, code: err.code, message: err.message, expose: err.expose, headers: { ...err.headers } };
  }
  const e = err instanceof Error ? err : new Error(String(err));
  return { kind: 'error', name: e.name, message: e.message, stack: e.stack };
}

/** The error again on this side: a ServiceError stays one (status, code, message); anything else keeps its stack. */
export function fromWire(wire: WireError): Error {
  if (wire.kind === 'service') return new ServiceError(wire.status, wire.code, wire.message, { expose: wire.expose, headers: wire.headers });
  const err = new Error(wire.message);
  err.name = wire.name;
  if (wire.stack) err.stack = wire.stack;
  return err;
}

export function settledToWire(settled: Settled<PipelineResult>): { ok: true; value: PipelineResult } | { ok: false; error: WireError } {
  return settled.ok ? settled : { ok: false, error: toWire(settled.error) };
}
