// What a render thread computes: the same verdict from a review's text as from the pod decoded on the main thread,
// the patch serialised and encoded as the reply carries it, and the thread's side of the protocol (settings sent
// once, retired, missing; engine errors reported rather than thrown).
import { podFromReviewText } from '../../../src/injector/admission.js';
import { applyJsonPatch, injectPod } from '../../../src/injector/engine/index.js';
import type { InjectorSettings } from '../../../src/injector/engine/settings.js';
import {
  renderJob,
  renderThreadHandler,
  type RenderJob,
  type RenderThreadRequest,
} from '../../../src/injector/render-job.js';
import { settingsFromRevision } from '../../../src/crds/proxy.js';

const SETTINGS = settingsFromRevision('asm-1', { version: '1.29.6' });
const OTHER_HUB = settingsFromRevision('asm-1', { version: '1.29.6', hub: 'mirror.example/istio' });

const pod = (annotations: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    generateName: 'web-7d9f8b6c5d-',
    labels: { app: 'web' },
    annotations,
    managedFields: [{ manager: 'kube-controller-manager' }],
  },
  spec: { containers: [{ name: 'web', image: 'nginx', ports: [{ containerPort: 8080 }] }] },
});

const reviewText = (object: unknown) =>
  JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: { uid: 'u-1', namespace: 'shop', operation: 'CREATE', object },
  });

const job = (input: RenderJob['input']): RenderJob => ({
  input,
  namespace: 'shop',
  pathParams: { ISTIO_META_NETWORK: 'n1' },
  nodeKubeletMinorVersions: [36],
});

describe('renderJob', () => {
  test.each<{ name: string; annotations: Record<string, string>; kind: string }>([
    { name: 'an injected pod', annotations: {}, kind: 'injected' },
    {
      name: 'a pod opted out by annotation',
      annotations: { 'sidecar.istio.io/inject': 'false' },
      kind: 'skipped',
    },
    {
      name: 'a pod with an invalid annotation',
      annotations: { 'traffic.sidecar.istio.io/includeInboundPorts': 'eighty' },
      kind: 'rejected',
    },
  ])('$name: the same verdict from the review text as from the decoded pod', ({ annotations, kind }) => {
    const text = reviewText(pod(annotations));
    const decoded = podFromReviewText(text);
    if (!decoded.ok) throw new Error(decoded.message);
    const fromText = renderJob(job({ reviewText: text }), SETTINGS);
    expect(fromText.kind).toBe(kind);
    expect(fromText).toEqual(renderJob(job({ pod: decoded.pod }), SETTINGS));
  });

  test("an injected verdict carries the engine's patch as JSON and as the reply's base64", () => {
    const text = reviewText(pod());
    const verdict = renderJob(job({ reviewText: text }), SETTINGS);
    if (verdict.kind !== 'injected') throw new Error(`expected an injection, got ${verdict.kind}`);
    expect(Buffer.from(verdict.patchBase64, 'base64').toString('utf8')).toBe(verdict.patchJson);

    const decoded = podFromReviewText(text);
    if (!decoded.ok) throw new Error(decoded.message);
    const engine = injectPod({
      pod: structuredClone(decoded.pod) as never,
      namespace: 'shop',
      settings: SETTINGS,
      pathParams: { ISTIO_META_NETWORK: 'n1' },
      nodeKubeletMinorVersions: [36],
    });
    if (engine.kind !== 'injected') throw new Error('expected an injection');
    expect(JSON.parse(verdict.patchJson)).toEqual(engine.patch);
    expect(applyJsonPatch(structuredClone(decoded.pod), JSON.parse(verdict.patchJson))).toEqual(engine.pod);
  });

  test('a review text that does not decode is an error, not a verdict', () => {
    expect(() => renderJob(job({ reviewText: '{"kind":' }), SETTINGS)).toThrow(/could not decode the review/);
  });
});

describe('renderThreadHandler (the thread side of the render protocol)', () => {
  const request = (
    id: number,
    settingsId: number,
    extra: Partial<RenderThreadRequest> = {},
  ): RenderThreadRequest => ({ id, settingsId, job: job({ reviewText: reviewText(pod()) }), ...extra });
  const image = (reply: ReturnType<ReturnType<typeof renderThreadHandler>>): string => {
    if (!('verdict' in reply) || reply.verdict.kind !== 'injected') throw new Error(JSON.stringify(reply));
    return /"image":"([^"]*proxyv2[^"]*)"/.exec(reply.verdict.patchJson)?.[1] ?? '';
  };

  test('keeps settings sent once for later jobs, and forgets retired ones', () => {
    const handle = renderThreadHandler();
    expect(image(handle(request(1, 7, { settings: SETTINGS })))).toBe('docker.io/istio/proxyv2:1.29.6');
    expect(image(handle(request(2, 7)))).toBe('docker.io/istio/proxyv2:1.29.6');
    expect(image(handle(request(3, 8, { settings: OTHER_HUB, retire: [7] })))).toBe(
      'mirror.example/istio/proxyv2:1.29.6',
    );
    expect(handle(request(4, 7))).toEqual({ id: 4, failed: 'render thread has no settings 7' });
  });

  test('reports the time it spent on each job it rendered', () => {
    const handle = renderThreadHandler();
    const reply = handle(request(1, 7, { settings: SETTINGS }));
    expect(reply).toMatchObject({ id: 1, verdict: { kind: 'injected' } });
    expect(reply.renderMs).toBeGreaterThan(0);
    expect(reply.renderMs).toBeLessThan(10_000);
  });

  test('reports an engine error as a failure of that job and goes on with the next', () => {
    const handle = renderThreadHandler();
    // Settings no revision spec produces: the engine throws reading them.
    const broken = { ...SETTINGS, ignoredNamespaces: null } as unknown as InjectorSettings;
    expect(handle(request(1, 1, { settings: broken }))).toEqual({
      id: 1,
      failed: expect.stringContaining('Cannot read properties of null'),
      renderMs: expect.any(Number),
    });
    expect(image(handle(request(2, 2, { settings: SETTINGS })))).toContain('proxyv2');
  });
});
