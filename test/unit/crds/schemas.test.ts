import {
  ControlPlaneRevisionSpecSchema,
  parseControlPlaneRevision,
} from '../../../src/crds/controlplanerevision.js';
import { parseRevisionTag } from '../../../src/crds/revisiontag.js';

const cpr = (name: string, spec: unknown) => ({
  apiVersion: 'meshrev.dev/v1alpha1',
  kind: 'ControlPlaneRevision',
  metadata: { name, uid: 'u1' },
  spec,
});

describe('ControlPlaneRevision spec schema', () => {
  it('applies the defaults the CRD declares', () => {
    expect(ControlPlaneRevisionSpecSchema.parse({ channel: 'regular' })).toMatchObject({
      channel: 'regular',
      namespace: 'istio-system',
      hub: 'docker.io/istio',
      istiod: {},
      injection: { enabled: true },
    });
  });

  it('fills autoscaling defaults when only part of it is given', () => {
    expect(
      ControlPlaneRevisionSpecSchema.parse({ version: '1.29.6', istiod: { autoscaling: {} } }).istiod,
    ).toEqual({
      autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 5, targetCPUUtilizationPercentage: 80 },
    });
  });

  it.each([
    [
      'both version and channel',
      { version: '1.29.6', channel: 'stable' },
      /exactly one of version and channel/,
    ],
    ['neither version nor channel', {}, /exactly one of version and channel/],
    ['an unknown channel', { channel: 'beta' }, /channel/],
    ['a malformed version', { version: 'v1.29' }, /version/],
    [
      'min above max replicas',
      { version: '1.29.6', istiod: { autoscaling: { minReplicas: 6, maxReplicas: 3 } } },
      /minReplicas must not exceed maxReplicas/,
    ],
    [
      'replicas with autoscaling',
      { version: '1.29.6', istiod: { replicas: 2, autoscaling: {} } },
      /autoscaling/,
    ],
    [
      'minAvailable with maxUnavailable',
      { version: '1.29.6', istiod: { podDisruptionBudget: { minAvailable: 1, maxUnavailable: 1 } } },
      /at most one/,
    ],
    ['a namespace that is no DNS label', { version: '1.29.6', namespace: 'Istio_System' }, /namespace/],
  ])('rejects %s', (_name, spec, message) => {
    const result = parseControlPlaneRevision(cpr('canary', spec));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(message);
  });

  it('keeps unknown meshConfig fields and accepts quantities as numbers or strings', () => {
    const result = parseControlPlaneRevision(
      cpr('canary', {
        version: '1.29.6',
        meshConfig: { accessLogFile: '/dev/stdout', localityLbSetting: { enabled: true } },
        istiod: { resources: { limits: { cpu: 2, memory: '4Gi' } } },
      }),
    );
    expect(result.ok && result.value.spec.meshConfig).toEqual({
      accessLogFile: '/dev/stdout',
      localityLbSetting: { enabled: true },
    });
  });

  it('rejects a revision name too long for its derived names', () => {
    const result = parseControlPlaneRevision(cpr('r'.repeat(40), { version: '1.29.6' }));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(/longer than 39/);
  });

  it('turns Date timestamps from typed list calls into strings', () => {
    const object = cpr('canary', { version: '1.29.6' });
    const result = parseControlPlaneRevision({
      ...object,
      metadata: { ...object.metadata, creationTimestamp: new Date('2026-01-02T03:04:05Z') },
    });
    expect(result.ok && result.value.metadata.creationTimestamp).toBe('2026-01-02T03:04:05.000Z');
  });
});

describe('RevisionTag schema', () => {
  const tagObject = (name: string, revision: string) => ({
    apiVersion: 'meshrev.dev/v1alpha1',
    kind: 'RevisionTag',
    metadata: { name, uid: 'u2' },
    spec: { revision },
  });

  it('accepts a tag pointing at a revision', () => {
    expect(parseRevisionTag(tagObject('prod', 'canary')).ok).toBe(true);
  });

  it.each([
    ['a tag named like its target', tagObject('canary', 'canary'), /name of the revision/],
    ['a tag name that is no DNS label', tagObject('Prod', 'canary'), /DNS-1123/],
    ['a missing target', { ...tagObject('prod', 'canary'), spec: {} }, /revision/],
  ])('rejects %s', (_name, object, message) => {
    const result = parseRevisionTag(object);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error).toMatch(message);
  });
});
