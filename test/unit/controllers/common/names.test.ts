import {
  injectionPath,
  istiodName,
  meshConfigMapName,
  revisionNameProblems,
  revisionWebhookConfigurationName,
  tagNameProblems,
  tagWebhookConfigurationName,
} from '../../../../src/controllers/common/names.js';
import {
  readInjectionWebhookSettings,
  injectionEnabled,
} from '../../../../src/controllers/common/webhooks.js';

describe('derived names', () => {
  it.each([
    ['canary', 'istio-system', 'istio-sidecar-injector-canary'],
    ['canary', 'mesh-a', 'istio-sidecar-injector-canary-mesh-a'],
  ])('names the webhook configuration of %s in %s %s', (revision, namespace, expected) => {
    expect(revisionWebhookConfigurationName(revision, namespace)).toBe(expected);
  });

  it('derives the istiod, ConfigMap, tag webhook and injector path names', () => {
    expect(istiodName('asm-1233-2')).toBe('istiod-asm-1233-2');
    expect(meshConfigMapName('asm-1233-2')).toBe('istio-asm-1233-2');
    expect(tagWebhookConfigurationName('prod')).toBe('istio-revision-tag-prod');
    expect(injectionPath('canary')).toBe('/inject/canary');
  });

  it('keeps the istiod pod name whole for the longest allowed revision', () => {
    const longest = 'r'.repeat(39);
    expect(revisionNameProblems(longest)).toEqual([]);
    // ReplicaSet name plus '-' must fit the 58-character generate-name base.
    expect(`${istiodName(longest)}-${'9'.repeat(10)}-`.length).toBeLessThanOrEqual(58);
  });

  it.each([
    ['r'.repeat(40), /longer than 39/],
    ['Canary', /DNS-1123/],
    ['-canary', /DNS-1123/],
    ['canary.1', /DNS-1123/],
  ])('rejects the revision name %s', (name, problem) => {
    expect(revisionNameProblems(name)).toEqual([expect.stringMatching(problem)]);
  });

  it('allows tags up to 43 characters, so istiod-revision-tag-<tag> stays a valid Service name', () => {
    expect(tagNameProblems('t'.repeat(43))).toEqual([]);
    expect(`istiod-revision-tag-${'t'.repeat(43)}`.length).toBeLessThanOrEqual(63);
    expect(tagNameProblems('t'.repeat(44))).toEqual([expect.stringMatching(/longer than 43/)]);
  });
});

describe('readInjectionWebhookSettings', () => {
  it("falls back to Istio's defaults for missing or malformed fields", () => {
    expect(readInjectionWebhookSettings(undefined)).toEqual({
      failurePolicy: 'Fail',
      reinvocationPolicy: 'Never',
      timeoutSeconds: undefined,
      enableNamespacesByDefault: false,
    });
    expect(
      readInjectionWebhookSettings({
        failurePolicy: 'Sometimes',
        timeoutSeconds: '5',
        enableNamespacesByDefault: 'yes',
      }),
    ).toEqual({
      failurePolicy: 'Fail',
      reinvocationPolicy: 'Never',
      timeoutSeconds: undefined,
      enableNamespacesByDefault: false,
    });
  });

  it('reads the fields of spec.injection', () => {
    expect(
      readInjectionWebhookSettings({
        failurePolicy: 'Ignore',
        reinvocationPolicy: 'IfNeeded',
        timeoutSeconds: 7,
        enableNamespacesByDefault: true,
      }),
    ).toEqual({
      failurePolicy: 'Ignore',
      reinvocationPolicy: 'IfNeeded',
      timeoutSeconds: 7,
      enableNamespacesByDefault: true,
    });
  });

  it('treats injection as enabled unless explicitly disabled', () => {
    expect([injectionEnabled(undefined), injectionEnabled({}), injectionEnabled({ enabled: false })]).toEqual(
      [true, true, false],
    );
  });
});
