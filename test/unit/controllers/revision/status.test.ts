import {
  computeRevisionStatus,
  determineInUseCondition,
  determineReadyCondition,
  determineReconciledCondition,
  type DeploymentObservation,
  type RevisionObservations,
  statusEqual,
} from '../../../../src/controllers/revision/status.js';

const available = (status: string, message?: string) => [{ type: 'Available', status, message }];

describe('determineReconciledCondition', () => {
  it('is True with reason Reconciled when nothing failed', () => {
    expect(determineReconciledCondition()).toEqual({
      type: 'Reconciled',
      status: 'True',
      reason: 'Reconciled',
      message: 'All objects of the revision are applied',
    });
  });

  it.each(['ApplyFailed', 'UnknownChannel', 'UnsupportedVersion', 'WebhookConflict'])(
    'is False and carries the %s failure',
    (reason) => {
      expect(determineReconciledCondition({ reason, message: 'what went wrong' })).toEqual({
        type: 'Reconciled',
        status: 'False',
        reason,
        message: 'what went wrong',
      });
    },
  );
});

describe('determineReadyCondition', () => {
  const deployment = (observation: Partial<DeploymentObservation>): DeploymentObservation => ({
    name: 'istiod-canary',
    ...observation,
  });

  it.each<[string, DeploymentObservation | undefined, string, string]>([
    ['no Deployment', undefined, 'False', 'IstiodNotFound'],
    ['no Available condition yet', deployment({ replicas: 1 }), 'False', 'IstiodNotAvailable'],
    [
      'Available=False',
      deployment({ replicas: 2, readyReplicas: 0, conditions: available('False', 'min') }),
      'False',
      'IstiodNotAvailable',
    ],
    [
      'Available=True but no ready pod',
      deployment({ replicas: 0, readyReplicas: 0, conditions: available('True') }),
      'False',
      'IstiodNotAvailable',
    ],
    [
      'Available=True with ready pods',
      deployment({ replicas: 2, readyReplicas: 1, conditions: available('True') }),
      'True',
      'IstiodAvailable',
    ],
  ])('with %s is %s (%s)', (_name, observation, status, reason) => {
    expect(determineReadyCondition(observation)).toMatchObject({ type: 'Ready', status, reason });
  });

  it('explains unavailability with the counts and the Deployment message', () => {
    expect(
      determineReadyCondition(
        deployment({
          replicas: 2,
          readyReplicas: 0,
          conditions: available('False', 'Deployment does not have minimum availability.'),
        }),
      ).message,
    ).toBe(
      'Deployment istiod-canary is not available (0/2 istiod replicas ready): Deployment does not have minimum availability.',
    );
  });
});

describe('determineInUseCondition', () => {
  it('is Unknown until usage was counted', () => {
    expect(determineInUseCondition(undefined)).toMatchObject({ status: 'Unknown', reason: 'UsageUnknown' });
  });

  it('is False when nothing uses the revision', () => {
    expect(determineInUseCondition({ namespaces: 0, pods: 0, stalePods: 0, tags: [] })).toMatchObject({
      status: 'False',
      reason: 'NotInUse',
    });
  });

  it.each([
    [{ namespaces: 1, pods: 0, stalePods: 0, tags: [] }, 'Used by 1 namespace'],
    [{ namespaces: 0, pods: 3, stalePods: 0, tags: [] }, 'Used by 3 pods'],
    [{ namespaces: 0, pods: 0, stalePods: 0, tags: ['prod', 'default'] }, 'Used by tags default, prod'],
    [
      { namespaces: 2, pods: 5, stalePods: 1, tags: ['prod'] },
      "Used by 2 namespaces, 5 pods, tag prod; 1 pod still run another revision's proxy",
    ],
  ])('is True when %j uses it', (usage, message) => {
    expect(determineInUseCondition(usage)).toEqual({
      type: 'InUse',
      status: 'True',
      reason: 'InUse',
      message,
    });
  });
});

describe('computeRevisionStatus', () => {
  const healthy: RevisionObservations = {
    generation: 3,
    resolved: { version: '1.29.6', channel: 'regular' },
    deployment: { name: 'istiod-canary', replicas: 2, readyReplicas: 2, conditions: available('True') },
    usage: { namespaces: 1, pods: 4, stalePods: 0, tags: [] },
    webhookConfiguration: 'istio-sidecar-injector-canary',
    now: '2026-03-01T10:00:00Z',
  };

  it('reports generation, version, channel, conditions, istiod replicas, webhook and usage', () => {
    expect(computeRevisionStatus(undefined, healthy)).toEqual({
      observedGeneration: 3,
      version: '1.29.6',
      channel: 'regular',
      conditions: [
        {
          type: 'Reconciled',
          status: 'True',
          observedGeneration: 3,
          lastTransitionTime: '2026-03-01T10:00:00Z',
          reason: 'Reconciled',
          message: 'All objects of the revision are applied',
        },
        {
          type: 'Ready',
          status: 'True',
          observedGeneration: 3,
          lastTransitionTime: '2026-03-01T10:00:00Z',
          reason: 'IstiodAvailable',
          message: 'istiod is available (2/2 istiod replicas ready)',
        },
        {
          type: 'InUse',
          status: 'True',
          observedGeneration: 3,
          lastTransitionTime: '2026-03-01T10:00:00Z',
          reason: 'InUse',
          message: 'Used by 1 namespace, 4 pods',
        },
      ],
      istiod: { replicas: 2, readyReplicas: 2 },
      webhookConfiguration: 'istio-sidecar-injector-canary',
      inUse: { namespaces: 1, pods: 4, stalePods: 0 },
    });
  });

  it('equals the previous status when nothing changed, even later', () => {
    const first = computeRevisionStatus(undefined, healthy);
    const second = computeRevisionStatus(first, { ...healthy, now: '2026-03-01T11:00:00Z' });
    expect(statusEqual(first, second)).toBe(true);
  });

  it('moves only the transitioned condition and keeps the deployed version when resolution fails', () => {
    const first = computeRevisionStatus(undefined, healthy);
    const failed = computeRevisionStatus(first, {
      ...healthy,
      generation: 4,
      resolved: undefined,
      failure: { reason: 'UnknownChannel', message: "channel 'beta' is unknown" },
      now: '2026-03-01T12:00:00Z',
    });
    expect(failed.version).toBe('1.29.6');
    expect(failed.channel).toBe('regular');
    expect(failed.observedGeneration).toBe(4);
    const byType = Object.fromEntries(
      (failed.conditions ?? []).map((condition) => [condition.type, condition]),
    );
    expect(byType['Reconciled']).toMatchObject({
      status: 'False',
      reason: 'UnknownChannel',
      lastTransitionTime: '2026-03-01T12:00:00Z',
      observedGeneration: 4,
    });
    expect(byType['Ready']).toMatchObject({ status: 'True', lastTransitionTime: '2026-03-01T10:00:00Z' });
    expect(statusEqual(first, failed)).toBe(false);
  });

  it('keeps the last counted usage while usage is unknown, but says InUse is Unknown', () => {
    const first = computeRevisionStatus(undefined, healthy);
    const next = computeRevisionStatus(first, { ...healthy, usage: undefined });
    expect(next.inUse).toEqual({ namespaces: 1, pods: 4, stalePods: 0 });
    expect(next.conditions?.find((condition) => condition.type === 'InUse')?.status).toBe('Unknown');
  });

  it('drops the webhook name when injection is disabled', () => {
    expect(
      computeRevisionStatus(undefined, { ...healthy, webhookConfiguration: undefined }),
    ).not.toHaveProperty('webhookConfiguration');
  });
});

describe('statusEqual', () => {
  it('ignores key order but nothing else', () => {
    expect(
      statusEqual({ version: '1.29.6', observedGeneration: 1 }, { observedGeneration: 1, version: '1.29.6' }),
    ).toBe(true);
    expect(statusEqual({ version: '1.29.6' }, { version: '1.29.6', istiod: { replicas: 1 } })).toBe(false);
    expect(statusEqual(undefined, {})).toBe(true);
  });
});
