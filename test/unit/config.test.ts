// Operator configuration: flags override environment variables override defaults; a bad value stops
// start-up with one line naming both the flag and the environment variable.
import { hostname } from 'node:os';

import { ConfigError, loadOperatorConfig, operatorUsage } from '../../src/config.js';

function configError(argv: string[], env: NodeJS.ProcessEnv = {}): ConfigError {
  try {
    loadOperatorConfig(argv, env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify({ argv, env })}`);
}

describe('loadOperatorConfig', () => {
  test('uses the defaults when nothing is set', () => {
    const config = loadOperatorConfig([], {});
    expect(config.kubeconfig).toBeUndefined();
    expect(config.context).toBeUndefined();
    expect(config).toMatchObject({
      namespace: 'meshrev-system',
      podName: hostname(),
      injectorHost: '0.0.0.0',
      injectorPort: 9443,
      metricsHost: '0.0.0.0',
      metricsPort: 8080,
      injectorServiceName: 'meshrev-injector',
      injectorServicePort: 443,
      tlsSecretName: 'meshrev-injector-tls',
      logLevel: 'info',
      leaderElect: true,
      leaseName: 'meshrev-leader',
      createDefaultTag: true,
      channelConfigMap: 'meshrev-channels',
      workers: 4,
      resyncSeconds: 600,
      devWebhookRouting: false,
      fieldManager: 'meshrev',
      injectionCacheEntries: 256,
    });
  });

  test.each<{ name: string; argv: string[]; env: NodeJS.ProcessEnv; expected: Record<string, unknown> }>([
    {
      name: 'an environment variable overrides the default',
      argv: [],
      env: { MESHREV_INJECTOR_PORT: '10250' },
      expected: { injectorPort: 10250 },
    },
    {
      name: 'a flag overrides the environment variable',
      argv: ['--injector-port=9000'],
      env: { MESHREV_INJECTOR_PORT: '10250' },
      expected: { injectorPort: 9000 },
    },
    {
      name: 'a flag may take its value as the next argument',
      argv: ['--namespace', 'mesh-ops'],
      env: {},
      expected: { namespace: 'mesh-ops' },
    },
    {
      name: 'KUBECONFIG is read like kubectl does',
      argv: [],
      env: { KUBECONFIG: '/tmp/kc' },
      expected: { kubeconfig: '/tmp/kc' },
    },
    {
      name: 'POD_NAME from the downward API names the replica',
      argv: [],
      env: { POD_NAME: 'meshrev-7d9-x' },
      expected: { podName: 'meshrev-7d9-x' },
    },
    {
      name: 'a bare boolean flag means true',
      argv: ['--dev-webhook-routing'],
      env: {},
      expected: { devWebhookRouting: true },
    },
    {
      name: 'a boolean flag set to false',
      argv: ['--leader-elect=false'],
      env: {},
      expected: { leaderElect: false },
    },
    {
      name: 'a boolean environment variable of 0',
      argv: [],
      env: { MESHREV_CREATE_DEFAULT_TAG: '0' },
      expected: { createDefaultTag: false },
    },
    {
      name: 'a boolean flag overrides its environment variable',
      argv: ['--leader-elect=true'],
      env: { MESHREV_LEADER_ELECT: 'false' },
      expected: { leaderElect: true },
    },
    { name: 'port 0 picks a free port', argv: ['--metrics-port=0'], env: {}, expected: { metricsPort: 0 } },
    {
      name: 'the longest TLS check interval a timer can wait',
      argv: ['--tls-check-seconds=2147483'],
      env: {},
      expected: { tlsCheckSeconds: 2_147_483 },
    },
    {
      name: 'a resync of 0 turns it off',
      argv: [],
      env: { MESHREV_RESYNC_SECONDS: '0' },
      expected: { resyncSeconds: 0 },
    },
  ])('$name', ({ argv, env, expected }) => {
    expect(loadOperatorConfig(argv, env)).toMatchObject(expected);
  });

  test.each<{ name: string; argv: string[]; env: NodeJS.ProcessEnv; line: string | RegExp }>([
    {
      name: 'a port out of range given as a flag',
      argv: ['--injector-port=99999'],
      env: {},
      line: /^invalid setting --injector-port \(env MESHREV_INJECTOR_PORT\) = "99999": /,
    },
    {
      name: 'a port that is no number given in the environment',
      argv: [],
      env: { MESHREV_METRICS_PORT: 'http' },
      line: /^invalid setting --metrics-port \(env MESHREV_METRICS_PORT\) = "http": /,
    },
    {
      name: 'an unknown log level',
      argv: ['--log-level=verbose'],
      env: {},
      line: /^invalid setting --log-level \(env MESHREV_LOG_LEVEL\) = "verbose": /,
    },
    {
      name: 'a namespace that is no DNS label',
      argv: [],
      env: { MESHREV_NAMESPACE: 'Mesh_Ops' },
      line: 'invalid setting --namespace (env MESHREV_NAMESPACE) = "Mesh_Ops": must be a DNS-1123 label',
    },
    {
      name: 'zero workers',
      argv: ['--workers=0'],
      env: {},
      line: /^invalid setting --workers \(env MESHREV_WORKERS\) = "0": /,
    },
    {
      name: 'a boolean that is not one',
      argv: ['--leader-elect=yes'],
      env: {},
      line: /^invalid setting --leader-elect \(env MESHREV_LEADER_ELECT\) = "yes": /,
    },
    {
      name: 'an empty field manager',
      argv: ['--field-manager='],
      env: {},
      line: /^invalid setting --field-manager \(env MESHREV_FIELD_MANAGER\) = "": /,
    },
    {
      name: 'a negative verdict cache size',
      argv: [],
      env: { MESHREV_INJECTION_CACHE_ENTRIES: '-1' },
      line: /^invalid setting --injection-cache-entries \(env MESHREV_INJECTION_CACHE_ENTRIES\) = "-1": /,
    },
    {
      name: 'a TLS check interval longer than a Node.js timer can wait',
      argv: [],
      env: { MESHREV_TLS_CHECK_SECONDS: '2147484' },
      line:
        'invalid setting --tls-check-seconds (env MESHREV_TLS_CHECK_SECONDS) = "2147484": must be at most ' +
        '2147483 (about 24.8 days), the longest interval a Node.js timer can wait',
    },
    {
      name: 'a resync period longer than a Node.js timer can wait',
      argv: ['--resync-seconds=2147484'],
      env: {},
      line:
        'invalid setting --resync-seconds (env MESHREV_RESYNC_SECONDS) = "2147484": must be at most ' +
        '2147483 (about 24.8 days), the longest interval a Node.js timer can wait',
    },
    { name: 'an unknown flag', argv: ['--injector-prot=1'], env: {}, line: /injector-prot/ },
    { name: 'a positional argument', argv: ['operator'], env: {}, line: /operator/ },
  ])('refuses $name with one line naming the setting', ({ argv, env, line }) => {
    const error = configError(argv, env);
    expect(error.message).not.toContain('\n');
    if (typeof line === 'string') expect(error.message).toBe(line);
    else expect(error.message).toMatch(line);
  });

  test('the flag wins even when the environment variable holds a bad value', () => {
    expect(loadOperatorConfig(['--workers=2'], { MESHREV_WORKERS: 'many' }).workers).toBe(2);
  });
});

describe('operatorUsage', () => {
  test('lists every flag with its environment variable and default', () => {
    const usage = operatorUsage();
    expect(usage.split('\n')[0]).toBe('usage: meshrev operator [flags]');
    for (const [flag, env] of [
      ['--injector-port', 'MESHREV_INJECTOR_PORT'],
      ['--leader-elect', 'MESHREV_LEADER_ELECT'],
      ['--kubeconfig', 'KUBECONFIG'],
      ['--create-default-tag', 'MESHREV_CREATE_DEFAULT_TAG'],
    ]) {
      expect(usage).toMatch(new RegExp(`${flag}\\s+env ${env}`));
    }
    expect(usage).toMatch(/--injector-port\s+env MESHREV_INJECTOR_PORT\s+default 9443/);
  });
});
