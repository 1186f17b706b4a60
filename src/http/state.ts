// What the routes and the app share: the config they read, what "ready" holds, and the app's mutable state.
import type { ServerResponse } from 'node:http';
import type { Config } from '../config';
import type { Pipeline } from '../engine/pipeline';
import type { Logger } from '../logger';
import type { HealthInfo } from './routes/health';

/** What the server needs once the model is loaded and warm. */
export interface Ready {
  pipeline: Pipeline;
  health: HealthInfo;
  /** Live figures of the engine for /health: worker threads, and the tensors they hold between batches. */
  engine?: () => { workers: number; tensors: number };
}

export type AppConfig = Pick<Config, 'topk' | 'maxUploadBytes' | 'maxInFlight' | 'requestTimeoutMs' | 'compat'>;

export interface AppDeps {
  config: AppConfig;
  logger: Logger;
  /** The loaded model's pipeline; a promise lets the server listen (health 503) while the model loads. */
  ready: Ready | Promise<Ready>;
}

/** Shared mutable state of one app: readiness, shutdown and the count of prediction requests held. */
export class AppState {
  ready: Ready | undefined;
  failure: Error | undefined;
  stopping = false;
  inFlight = 0;
  /** Requests with `Expect: 100-continue` not yet told to send their body (see App.checkContinue). */
  readonly awaitingContinue = new WeakSet<ServerResponse>();
}

