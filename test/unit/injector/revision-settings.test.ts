// The injector's settings for a revision also carry what the revision's istiod finds in its environment, because
// istiod's injector reads it: COMPLIANCE_POLICY reaches the proxies, and custom templates read variables with `env`.
import { injectorSettingsOf } from '../../../src/injector/revision-settings.js';
import { applyJsonPatch, injectPod, type Container, type Pod } from '../../../src/injector/engine/index.js';
import { revision } from '../controllers/fixtures.js';

const POD: Pod = {
  metadata: { name: 'web-0', namespace: 'shop', labels: { app: 'web' } },
  spec: { containers: [{ name: 'web', image: 'example/web:1' }] },
};

function proxyEnv(settings: ReturnType<typeof injectorSettingsOf>): Map<string, string | undefined> {
  const outcome = injectPod({ pod: POD, namespace: 'shop', settings, nodeKubeletMinorVersions: [33] });
  if (outcome.kind !== 'injected') throw new Error(`expected injection, got ${JSON.stringify(outcome)}`);
  const pod = applyJsonPatch(POD, outcome.patch) as Pod;
  const proxy = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find(
    (c: Container) => c.name === 'istio-proxy',
  );
  return new Map((proxy?.env ?? []).map((e) => [e.name, e.value]));
}

describe('injectorSettingsOf', () => {
  test("holds istiod's environment as its Deployment sets it: chart values, the spec's, and resolvable fieldRefs", () => {
    const settings = injectorSettingsOf(
      revision('canary', {
        namespace: 'mesh-system',
        istiod: { env: { PILOT_TRACE: '1', CLUSTER_ID: 'east' } },
      }),
      '1.29.6',
    );
    const env = settings.istiodEnvironment;
    expect(env.get('REVISION')).toBe('canary');
    expect(env.get('PILOT_CERT_PROVIDER')).toBe('istiod');
    expect(env.get('PILOT_TRACE')).toBe('1');
    expect(env.get('CLUSTER_ID')).toBe('east');
    expect(env.get('POD_NAMESPACE')).toBe('mesh-system');
    expect(env.get('SERVICE_ACCOUNT')).toBe('istiod-canary');
    // Different in every istiod pod, or taken from its resources: not known ahead of it.
    expect(env.has('POD_NAME')).toBe(false);
    expect(env.has('GOMAXPROCS')).toBe(false);
  });

  test("istiod's COMPLIANCE_POLICY reaches the injected proxies, as istiod's injector passes its own on", () => {
    expect(injectorSettingsOf(revision('plain'), '1.29.6').compliancePolicy).toBe('');
    expect(proxyEnv(injectorSettingsOf(revision('plain'), '1.29.6')).has('COMPLIANCE_POLICY')).toBe(false);

    const fips = proxyEnv(
      injectorSettingsOf(
        revision('fips', { istiod: { env: { COMPLIANCE_POLICY: 'fips-140-2' } } }),
        '1.29.6',
      ),
    );
    expect(fips.get('COMPLIANCE_POLICY')).toBe('fips-140-2');
    expect(fips.has('GODEBUG')).toBe(false);

    const fips3 = proxyEnv(
      injectorSettingsOf(
        revision('fips3', { istiod: { env: { COMPLIANCE_POLICY: 'fips-140-3' } } }),
        '1.29.6',
      ),
    );
    expect(fips3.get('COMPLIANCE_POLICY')).toBe('fips-140-3');
    expect(fips3.get('GODEBUG')).toBe('fips140=only');
  });

  test('a variable named like an Object.prototype member is only a variable', () => {
    const settings = injectorSettingsOf(
      revision('odd', { istiod: { env: { ['__proto__']: 'x', constructor: 'y' } } }),
      '1.29.6',
    );
    expect(settings.istiodEnvironment.get('constructor')).toBe('y');
    expect(Object.getPrototypeOf(settings.istiodEnvironment)).toBe(Map.prototype);
  });
});
