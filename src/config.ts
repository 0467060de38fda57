// Operator configuration: flags override environment variables override defaults, validated once at
// start-up with zod. A bad value stops the process with one line naming the setting.
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';

const booleanish = z
  .union([z.boolean(), z.enum(['true', 'false', '1', '0'])])
  .transform((v) => v === true || v === 'true' || v === '1');
// 0 picks a free port (tests run several operators side by side).
const port = z.coerce.number().int().min(0).max(65535);
const durationSeconds = z.coerce.number().min(0);
// Node.js runs a timer set beyond 2^31-1 ms after 1 ms instead: a longer interval would turn into a busy loop.
const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
/** A period the operator waits with a timer. */
const timerSeconds = durationSeconds.max(
  MAX_TIMER_SECONDS,
  `must be at most ${MAX_TIMER_SECONDS} (about 24.8 days), the longest interval a Node.js timer can wait`,
);

export const OperatorConfigSchema = z.object({
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS-1123 label'),
  podName: z.string().min(1),
  kubeconfig: z.string().optional(),
  context: z.string().optional(),
  injectorHost: z.string().min(1),
  injectorPort: port,
  metricsHost: z.string().min(1),
  metricsPort: port,
  injectorServiceName: z.string().min(1),
  injectorServicePort: port,
  tlsSecretName: z.string().min(1),
  /** How often the injector TLS Secret is re-read besides watching it (ageing checks, missed notifications). */
  tlsCheckSeconds: timerSeconds.min(1),
  /**
   * How long a new injector CA is trusted before it signs, and a replaced one after; 0 means twice the check
   * interval plus a minute (every replica's next pass and kube-apiserver seeing the webhook change).
   */
  tlsCaOverlapSeconds: durationSeconds,
  /** Injection verdicts kept for identical pods (ReplicaSet replicas); 0 turns the cache off. */
  injectionCacheEntries: z.coerce.number().int().min(0).max(100_000),
  /** Threads that run the injection engine for cache misses beside the main thread; 0 renders on the main thread. */
  injectorRenderThreads: z.coerce.number().int().min(0).max(16),
  /** `when-busy`: misses go to render threads only while the main thread is busy; `always`: every miss. */
  injectorRenderOffload: z.enum(['when-busy', 'always']),
  logLevel: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']),
  leaderElect: booleanish,
  leaseName: z.string().min(1),
  createDefaultTag: booleanish,
  channelConfigMap: z.string().min(1),
  workers: z.coerce.number().int().min(1).max(64),
  resyncSeconds: timerSeconds,
  /** For `make run` against the local cluster: route the injector Service to this process on localhost. */
  devWebhookRouting: booleanish,
  fieldManager: z.string().min(1),
});

export type OperatorConfig = z.output<typeof OperatorConfigSchema>;

const settings: Record<keyof OperatorConfig, { flag: string; env: string; default?: string }> = {
  namespace: { flag: 'namespace', env: 'MESHREV_NAMESPACE', default: 'meshrev-system' },
  podName: { flag: 'pod-name', env: 'POD_NAME', default: hostname() },
  kubeconfig: { flag: 'kubeconfig', env: 'KUBECONFIG' },
  context: { flag: 'context', env: 'MESHREV_CONTEXT' },
  injectorHost: { flag: 'injector-host', env: 'MESHREV_INJECTOR_HOST', default: '0.0.0.0' },
  injectorPort: { flag: 'injector-port', env: 'MESHREV_INJECTOR_PORT', default: '9443' },
  metricsHost: { flag: 'metrics-host', env: 'MESHREV_METRICS_HOST', default: '0.0.0.0' },
  metricsPort: { flag: 'metrics-port', env: 'MESHREV_METRICS_PORT', default: '8080' },
  injectorServiceName: {
    flag: 'injector-service',
    env: 'MESHREV_INJECTOR_SERVICE',
    default: 'meshrev-injector',
  },
  injectorServicePort: {
    flag: 'injector-service-port',
    env: 'MESHREV_INJECTOR_SERVICE_PORT',
    default: '443',
  },
  tlsSecretName: { flag: 'tls-secret', env: 'MESHREV_TLS_SECRET', default: 'meshrev-injector-tls' },
  tlsCheckSeconds: { flag: 'tls-check-seconds', env: 'MESHREV_TLS_CHECK_SECONDS', default: '300' },
  tlsCaOverlapSeconds: {
    flag: 'tls-ca-overlap-seconds',
    env: 'MESHREV_TLS_CA_OVERLAP_SECONDS',
    default: '0',
  },
  injectionCacheEntries: {
    flag: 'injection-cache-entries',
    env: 'MESHREV_INJECTION_CACHE_ENTRIES',
    default: '256',
  },
  injectorRenderThreads: {
    flag: 'injector-render-threads',
    env: 'MESHREV_INJECTOR_RENDER_THREADS',
    default: '1',
  },
  injectorRenderOffload: {
    flag: 'injector-render-offload',
    env: 'MESHREV_INJECTOR_RENDER_OFFLOAD',
    default: 'when-busy',
  },
  logLevel: { flag: 'log-level', env: 'MESHREV_LOG_LEVEL', default: 'info' },
  leaderElect: { flag: 'leader-elect', env: 'MESHREV_LEADER_ELECT', default: 'true' },
  leaseName: { flag: 'lease-name', env: 'MESHREV_LEASE_NAME', default: 'meshrev-leader' },
  createDefaultTag: { flag: 'create-default-tag', env: 'MESHREV_CREATE_DEFAULT_TAG', default: 'true' },
  channelConfigMap: {
    flag: 'channel-configmap',
    env: 'MESHREV_CHANNEL_CONFIGMAP',
    default: 'meshrev-channels',
  },
  workers: { flag: 'workers', env: 'MESHREV_WORKERS', default: '4' },
  resyncSeconds: { flag: 'resync-seconds', env: 'MESHREV_RESYNC_SECONDS', default: '600' },
  devWebhookRouting: { flag: 'dev-webhook-routing', env: 'MESHREV_DEV_WEBHOOK_ROUTING', default: 'false' },
  fieldManager: { flag: 'field-manager', env: 'MESHREV_FIELD_MANAGER', default: 'meshrev' },
};

export class ConfigError extends Error {}

export function operatorUsage(): string {
  const lines = Object.values(settings).map(
    (s) =>
      `  --${s.flag.padEnd(24)} env ${s.env.padEnd(30)} ${s.default !== undefined ? `default ${s.default}` : ''}`,
  );
  return ['usage: meshrev operator [flags]', ...lines].join('\n');
}

/** Parses flags and environment; throws ConfigError with one line naming the bad setting. */
export function loadOperatorConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): OperatorConfig {
  const options = Object.fromEntries(
    Object.values(settings).map((s) => [s.flag, { type: 'string' as const }]),
  ) as Record<string, { type: 'string' }>;
  let values: Record<string, string | boolean | undefined>;
  try {
    // Boolean flags may be given bare (`--leader-elect=false` or `--dev-webhook-routing`).
    const normalised = argv.map((a) =>
      /^--(leader-elect|create-default-tag|dev-webhook-routing)$/.test(a) ? `${a}=true` : a,
    );
    values = parseArgs({ args: normalised, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new ConfigError(err instanceof Error ? err.message : String(err));
  }
  const raw: Record<string, unknown> = {};
  for (const [key, s] of Object.entries(settings)) {
    raw[key] = values[s.flag] ?? env[s.env] ?? s.default;
  }
  const parsed = OperatorConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue?.path[0] ?? '') as keyof OperatorConfig;
    const s = settings[key];
    const given = raw[key];
    throw new ConfigError(
      `invalid setting --${s?.flag ?? key} (env ${s?.env ?? '?'}) = ${JSON.stringify(given)}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return parsed.data;
}
