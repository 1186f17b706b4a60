// Structured logging through pino: one JSON object per line on stderr ({"level","time","msg",...fields}), or
// pino-pretty's coloured lines for development; filtered by level.
import pino from 'pino';
import pretty from 'pino-pretty';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

/**
 * A logger at `level` writing to `write` (stderr by default, synchronously, so that the last lines before an exit
 * are not lost). Level names are written as words and times as ISO 8601, for readers that are not pino tools.
 */
export function createLogger(level: LogLevel, options: { format?: LogFormat; write?: (line: string) => void } = {}): Logger {
  const destination = options.write
    ? { write: options.write }
    : options.format === 'pretty'
      ? pretty({ destination: 2, sync: true, colorize: process.stderr.isTTY })
      : pino.destination({ fd: 2, sync: true });
  const base = pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  const at =
    (lineLevel: Exclude<LogLevel, 'silent'>) =>
    (message: string, fields: LogFields = {}): void =>
      base[lineLevel](fields, message);
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
