// What the routes and the app share: the config they read, what "ready" holds, and the app's mutable state.
import type { ServerResponse } from 'node:http';
import type { Config } from '../config';
import type { Pipeline, PipelineResult } from '../engine/pipeline';
import type { ErrorCode } from '../errors';
import type { Logger } from '../logger';
import type { Authenticator } from './auth';
import type { HealthInfo } from './routes/health';

/** What the server needs once the model is loaded and warm. */
export interface Ready {
  pipeline: Pipeline;
  health: HealthInfo;
  /** Live figures of the engine for /health: worker threads, and the tensors they hold between batches. */
  engine?: () => { threads: number; tensors: number };
}

export type AppConfig = Pick<
  Config,
  'topk' | 'maxUploadBytes' | 'maxFiles' | 'maxInFlight' | 'requestTimeoutMs' | 'compat' | 'authHealth' | 'authMetrics' | 'corsOrigins'
>;

export interface AppDeps {
  config: AppConfig;
  logger: Logger;
  /** The loaded model's pipeline; a promise lets the server listen (health 503) while the model loads. */
  ready: Ready | Promise<Ready>;
  /** Token checks; absent: no auth. */
  auth?: Authenticator;
  /** The built web page (index.html, assets/); default dist/web/ (WEB_DIR). */
  webDir?: string;
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


/** What a request's handlers learn about it, for its log line and metrics (ctx.state.facts). */
export interface RequestFacts {
  requestId: string;
  errorCode?: ErrorCode;
  /** Bytes of the uploaded files. */
  uploadBytes?: number;
  /** Each answered image: "<format> <width>x<height>" and how its batch ran. */
  images?: { image: string; timing: PipelineResult['timing'] }[];
}
