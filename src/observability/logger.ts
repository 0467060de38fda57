// pino logger factory. Objects are logged as references (kind, namespace/name, resourceVersion), never whole,
// and a redact list blanks credentials and private keys wherever they would otherwise slip through.
import { pino, stdSerializers, type DestinationStream, type Level, type Logger } from 'pino';

import { isRecord } from '../runtime/types.js';

export type { Logger } from 'pino';

export const logLevels: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

const secretFields = [
  'password',
  'token',
  'bearerToken',
  'authorization',
  'Authorization',
  'privateKey',
  'caKey',
  'tlsKey',
  'keyPem',
  'keyData',
  'clientKey',
  'stringData',
  'data["tls.key"]',
  'data["ca.key"]',
];

/** The same fields at the top level and one or two levels down (pino wildcards match a single level). */
export const redactPaths: string[] = secretFields.flatMap((field) => [field, `*.${field}`, `*.*.${field}`]);

export const redactCensor = '[REDACTED]';

export interface ObjectLogRef {
  kind?: string;
  namespace?: string;
  name?: string;
  resourceVersion?: string;
}

/** A small, secret-free description of a Kubernetes object for log lines. */
export function objectRefForLog(value: unknown): ObjectLogRef | unknown {
  if (!isRecord(value) || !isRecord(value.metadata)) return value;
  const ref: ObjectLogRef = {};
  if (typeof value.kind === 'string') ref.kind = value.kind;
  const { namespace, name, resourceVersion } = value.metadata;
  if (typeof namespace === 'string') ref.namespace = namespace;
  if (typeof name === 'string') ref.name = name;
  if (typeof resourceVersion === 'string') ref.resourceVersion = resourceVersion;
  return ref;
}

export interface LoggerOptions {
  component: string;
  level?: string;
  /** Where lines go; stdout when absent. Tests pass a collecting stream. */
  destination?: DestinationStream;
}

export function isLogLevel(level: string): level is Level {
  return (logLevels as readonly string[]).includes(level) || level === 'silent';
}

export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? 'info';
  if (!isLogLevel(level))
    throw new Error(`unknown log level "${level}" (one of ${logLevels.join(', ')}, silent)`);
  const config = {
    level,
    base: { component: options.component },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: redactPaths, censor: redactCensor },
    serializers: {
      err: stdSerializers.err,
      error: stdSerializers.err,
      object: objectRefForLog,
      obj: objectRefForLog,
    },
    formatters: {
      level: (label: string) => ({ level: label }),
    },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}

/** Child logger for work on one object inside a controller. */
export function objectLogger(
  logger: Logger,
  fields: { controller?: string; reconcileID?: string; object?: unknown },
): Logger {
  const bindings: Record<string, unknown> = {};
  if (fields.controller) bindings.controller = fields.controller;
  if (fields.reconcileID) bindings.reconcileID = fields.reconcileID;
  if (fields.object !== undefined) bindings.object = objectRefForLog(fields.object);
  return logger.child(bindings);
}
