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
    // Go's FIPS 140-3 mode (GODEBUG) comes with Istio 1.31's templates, not 1.29's.
    expect(fips3.has('GODEBUG')).toBe(false);
  });

  test('ENABLE_CLUSTER_TRUST_BUNDLE_API, read as istiod parses it, makes proxies mount the ClusterTrustBundle', () => {
    const volumeOf = (settings: ReturnType<typeof injectorSettingsOf>) => {
      const outcome = injectPod({ pod: POD, namespace: 'shop', settings, nodeKubeletMinorVersions: [33] });
      if (outcome.kind !== 'injected') throw new Error(`expected injection, got ${JSON.stringify(outcome)}`);
      const pod = applyJsonPatch(POD, outcome.patch) as Pod;
      return pod.spec?.volumes?.find((v) => v.name === 'istiod-ca-cert');
    };
    const plain = injectorSettingsOf(revision('plain'), '1.29.6');
    expect(plain.enableClusterTrustBundle).toBe(false);
    expect(volumeOf(plain)).toEqual({ name: 'istiod-ca-cert', configMap: { name: 'istio-ca-root-cert' } });
    for (const value of ['true', 'True', '1']) {
      const bundle = injectorSettingsOf(
        revision('bundle', { istiod: { env: { ENABLE_CLUSTER_TRUST_BUNDLE_API: value } } }),
        '1.29.6',
      );
      expect(bundle.enableClusterTrustBundle).toBe(true);
      expect(volumeOf(bundle)).toEqual({
        name: 'istiod-ca-cert',
        projected: {
          sources: [{ clusterTrustBundle: { name: 'istio.io:istiod-ca:root-cert', path: 'root-cert.pem' } }],
        },
      });
    }
    const off = injectorSettingsOf(
      revision('off', { istiod: { env: { ENABLE_CLUSTER_TRUST_BUNDLE_API: 'false' } } }),
      '1.29.6',
    );
    expect(off.enableClusterTrustBundle).toBe(false);
    // Templates see the chart's `pilot.env` as Helm would have read it: true and false are booleans.
    expect(off.pilotEnv).toEqual({ ENABLE_CLUSTER_TRUST_BUNDLE_API: false });
  });

  test("ENABLE_NATIVE_SIDECARS decides the layout as istiod's does, unless spec.proxy.nativeSidecars says true or false", () => {
    const mode = (env: Record<string, string>, nativeSidecars?: 'auto' | 'true' | 'false') =>
      injectorSettingsOf(
        revision('r', { istiod: { env }, ...(nativeSidecars ? { proxy: { nativeSidecars } } : {}) }),
        '1.29.6',
      ).nativeSidecars;
    expect(mode({})).toBe('auto');
    expect(mode({ ENABLE_NATIVE_SIDECARS: 'false' })).toBe('false');
    expect(mode({ ENABLE_NATIVE_SIDECARS: 'true' })).toBe('true');
    // istiod reads an unknown value as off.
    expect(mode({ ENABLE_NATIVE_SIDECARS: 'yes' })).toBe('false');
    expect(mode({ ENABLE_NATIVE_SIDECARS: 'false' }, 'auto')).toBe('false');
    expect(mode({ ENABLE_NATIVE_SIDECARS: 'false' }, 'true')).toBe('true');
    expect(mode({}, 'false')).toBe('false');
  });

  test('a variable named like an Object.prototype member is only a variable', () => {
    const settings = injectorSettingsOf(
      revision('odd', { istiod: { env: { ['__proto__']: 'x', constructor: 'y' } } }),
      '1.29.6',
    );
    expect(settings.istiodEnvironment.get('constructor')).toBe('y');
    expect(Object.getPrototypeOf(settings.istiodEnvironment)).toBe(Map.prototype);
    expect(Object.getPrototypeOf(settings.pilotEnv)).toBe(Object.prototype);
    expect(Object.hasOwn(settings.pilotEnv, 'constructor')).toBe(true);
    expect(settings.pilotEnv['constructor']).toBe('y');
  });
});
