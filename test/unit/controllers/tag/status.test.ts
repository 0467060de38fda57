import {
  computeTagStatus,
  determineTagInUseCondition,
  determineTagReconciledCondition,
  tagStatusEqual,
} from '../../../../src/controllers/tag/status.js';

describe('tag conditions', () => {
  it('is Reconciled unless a failure is reported', () => {
    expect(determineTagReconciledCondition()).toMatchObject({ status: 'True', reason: 'Reconciled' });
    expect(
      determineTagReconciledCondition({
        reason: 'RevisionNotFound',
        message: 'revision canary does not exist',
      }),
    ).toEqual({
      type: 'Reconciled',
      status: 'False',
      reason: 'RevisionNotFound',
      message: 'revision canary does not exist',
    });
  });

  it.each([
    [undefined, 'Unknown', 'UsageUnknown'],
    [{ namespaces: 0, pods: 0 }, 'False', 'NotInUse'],
    [{ namespaces: 2, pods: 1 }, 'True', 'InUse'],
  ])('InUse for usage %j is %s (%s)', (usage, status, reason) => {
    expect(determineTagInUseCondition(usage)).toMatchObject({ type: 'InUse', status, reason });
  });

  it('explains who selects the tag', () => {
    expect(determineTagInUseCondition({ namespaces: 2, pods: 1 }).message).toBe(
      'Selected by 2 namespaces and 1 pod',
    );
  });
});

describe('computeTagStatus', () => {
  const observed = {
    generation: 2,
    revision: 'canary',
    usage: { namespaces: 1, pods: 0 },
    webhookConfiguration: 'istio-revision-tag-prod',
    now: '2026-03-01T10:00:00Z',
  };

  it('reports the routed revision, webhook name and conditions', () => {
    const status = computeTagStatus(undefined, observed);
    expect(status).toMatchObject({
      observedGeneration: 2,
      revision: 'canary',
      webhookConfiguration: 'istio-revision-tag-prod',
    });
    expect(status.conditions?.map((condition) => [condition.type, condition.status])).toEqual([
      ['Reconciled', 'True'],
      ['InUse', 'True'],
    ]);
  });

  it('names no revision or webhook configuration once the tag routes nowhere', () => {
    const first = computeTagStatus(undefined, {
      ...observed,
      webhookConfiguration: 'istio-revision-tag-prod',
    });
    const failed = computeTagStatus(first, {
      ...observed,
      generation: 3,
      revision: undefined,
      webhookConfiguration: undefined,
      failure: { reason: 'RevisionNotFound', message: 'revision blue does not exist' },
      now: '2026-03-01T11:00:00Z',
    });
    expect(first).toMatchObject({ revision: 'canary', webhookConfiguration: 'istio-revision-tag-prod' });
    expect(failed.revision).toBeUndefined();
    expect(failed.webhookConfiguration).toBeUndefined();
    expect(failed.conditions?.[0]).toMatchObject({
      status: 'False',
      lastTransitionTime: '2026-03-01T11:00:00Z',
    });
    expect(failed.conditions?.[1]).toMatchObject({
      status: 'True',
      lastTransitionTime: '2026-03-01T10:00:00Z',
    });
    expect(tagStatusEqual(first, failed)).toBe(false);
    expect(tagStatusEqual(first, computeTagStatus(first, { ...observed, now: '2026-03-02T00:00:00Z' }))).toBe(
      true,
    );
  });
});
