import { describe, expect, it } from '@jest/globals';
import {
  ADMISSION_V1,
  ADMISSION_V1BETA1,
  decodeAdmissionReview,
  handleAdmission,
  isAcceptedContentType,
  parseInjectPath,
  podFromRequest,
  type AdmissionDeps,
  type InjectRequest,
  type InjectResult,
} from '../../../../src/injector/admission.js';

const body = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));

function review(apiVersion: string, pod: unknown, extra: Record<string, unknown> = {}) {
  return {
    apiVersion,
    kind: 'AdmissionReview',
    request: { uid: 'uid-123', namespace: 'shop', operation: 'CREATE', object: pod, ...extra },
  };
}

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'web' },
  spec: { containers: [{ name: 'app' }] },
};

function recordingDeps(result: InjectResult | (() => InjectResult) = { kind: 'skipped', reason: 'test' }) {
  const calls: InjectRequest[] = [];
  const deps: AdmissionDeps = {
    inject: (req) => {
      calls.push(req);
      return typeof result === 'function' ? result() : result;
    },
    resolveTarget: (name) =>
      ({ 'asm-1233-2': { revision: 'asm-1233-2' }, prod: { revision: 'asm-1233-2' } })[name] ?? undefined,
  };
  return { deps, calls };
}

const injectPath = (url: string) => {
  const parsed = parseInjectPath(url);
  if (parsed.kind !== 'inject') throw new Error(`not an inject path: ${url}`);
  return parsed;
};

function parsedReply(replyBody: string | Buffer) {
  return JSON.parse(replyBody.toString()) as {
    apiVersion: string;
    kind: string;
    response: {
      uid: string;
      allowed: boolean;
      patchType?: string;
      patch?: string;
      status?: { message: string };
    };
  };
}

describe('parseInjectPath', () => {
  const table: Array<[string, ReturnType<typeof parseInjectPath>]> = [
    ['/inject/asm-1233-2', { kind: 'inject', revisionName: 'asm-1233-2', pathParams: {} }],
    ['/inject/asm-1233-2/', { kind: 'inject', revisionName: 'asm-1233-2', pathParams: {} }],
    ['/inject/canary?timeout=10s', { kind: 'inject', revisionName: 'canary', pathParams: {} }],
    [
      '/inject/canary/cluster/remote/net/network2',
      {
        kind: 'inject',
        revisionName: 'canary',
        pathParams: { ISTIO_META_CLUSTER_ID: 'remote', ISTIO_META_NETWORK: 'network2' },
      },
    ],
    [
      '/inject/canary/net/n1/cluster/c1',
      {
        kind: 'inject',
        revisionName: 'canary',
        pathParams: { ISTIO_META_NETWORK: 'n1', ISTIO_META_CLUSTER_ID: 'c1' },
      },
    ],
    [
      '/inject/canary/cluster/c1/custom_env/foo',
      {
        kind: 'inject',
        revisionName: 'canary',
        pathParams: { ISTIO_META_CLUSTER_ID: 'c1', CUSTOM_ENV: 'foo' },
      },
    ],
    [
      '/inject/canary/cluster/c1/odd',
      { kind: 'inject', revisionName: 'canary', pathParams: { ISTIO_META_CLUSTER_ID: 'c1' } },
    ],
    [
      '/inject/canary/rootpage/--slash--foo--slash--bar',
      { kind: 'inject', revisionName: 'canary', pathParams: { ROOTPAGE: '/foo/bar' } },
    ],
    [
      '/inject/canary/:ENV:cluster=c2:ENV:rootpage=/foo/bar:ENV:=skipped:ENV:novalue',
      {
        kind: 'inject',
        revisionName: 'canary',
        pathParams: { ISTIO_META_CLUSTER_ID: 'c2', ROOTPAGE: '/foo/bar' },
      },
    ],
    // Keys that are also names of JavaScript object properties are env names like any other, as in istiod.
    [
      '/inject/canary/constructor/x/:ENV:__proto__=y',
      { kind: 'inject', revisionName: 'canary', pathParams: { CONSTRUCTOR: 'x' } },
    ],
    [
      '/inject/canary/:ENV:__proto__=y:ENV:toString=z',
      { kind: 'inject', revisionName: 'canary', pathParams: { __PROTO__: 'y', TOSTRING: 'z' } },
    ],
    // Like Go's decoded URL.Path, %2F becomes a separator: `b` is then an odd trailing key.
    [
      '/inject/canary/net/a%2Fb',
      { kind: 'inject', revisionName: 'canary', pathParams: { ISTIO_META_NETWORK: 'a' } },
    ],
    [
      '/inject/canary/net/a%20b',
      { kind: 'inject', revisionName: 'canary', pathParams: { ISTIO_META_NETWORK: 'a b' } },
    ],
    ['/inject', { kind: 'inject', revisionName: '', pathParams: {} }],
    ['/inject/', { kind: 'inject', revisionName: '', pathParams: {} }],
    ['/', { kind: 'not-found' }],
    ['/healthz', { kind: 'not-found' }],
    ['/injector/canary', { kind: 'not-found' }],
    ['/validate', { kind: 'not-found' }],
    [
      '/inject/canary/net/%E0%A4%A',
      { kind: 'malformed', message: 'malformed percent-encoding in request path' },
    ],
  ];

  it.each(table)('parses %s', (url, expected) => {
    expect(parseInjectPath(url)).toEqual(expected);
  });
});

describe('isAcceptedContentType', () => {
  it.each([
    ['application/json', true],
    ['application/json; charset=utf-8', true],
    ['Application/JSON;charset="UTF-8"', true],
    ['application/yaml', false],
    ['application/json; charset=latin1', false],
    ['application/json; foo=bar', false],
    ['application/jsonp', false],
    ['text/plain', false],
    ['', false],
    [undefined, false],
  ])('%s → %s', (header, accepted) => {
    expect(isAcceptedContentType(header)).toBe(accepted);
  });
});

describe('decodeAdmissionReview', () => {
  it('accepts v1 and v1beta1 reviews and defaults a missing uid and namespace to empty strings', () => {
    const v1 = decodeAdmissionReview(body(review(ADMISSION_V1, POD)));
    expect(v1).toEqual({
      ok: true,
      review: {
        apiVersion: ADMISSION_V1,
        request: { uid: 'uid-123', namespace: 'shop', object: POD },
        text: JSON.stringify(review(ADMISSION_V1, POD)),
      },
    });
    const bareReview = { apiVersion: ADMISSION_V1BETA1, kind: 'AdmissionReview', request: {} };
    const bare = decodeAdmissionReview(body(bareReview));
    expect(bare).toEqual({
      ok: true,
      review: {
        apiVersion: ADMISSION_V1BETA1,
        request: { uid: '', namespace: '', object: undefined },
        text: JSON.stringify(bareReview),
      },
    });
  });

  it.each([
    ['random bytes', '\u0000\u00ff garbage', ADMISSION_V1, /couldn't decode/],
    ['a JSON array', '[1,2]', ADMISSION_V1, /must be a JSON object/],
    ['no kind', JSON.stringify({ apiVersion: ADMISSION_V1 }), ADMISSION_V1, /Kind' is missing/],
    [
      'an unknown version',
      JSON.stringify({ apiVersion: 'v2', kind: 'AdmissionReview' }),
      ADMISSION_V1,
      /"v2"/,
    ],
    [
      'a wrong kind',
      JSON.stringify({ apiVersion: ADMISSION_V1BETA1, kind: 'Pod' }),
      ADMISSION_V1BETA1,
      /"Pod"/,
    ],
    [
      'no request',
      JSON.stringify({ apiVersion: ADMISSION_V1, kind: 'AdmissionReview' }),
      ADMISSION_V1,
      /missing/,
    ],
    [
      'a numeric uid',
      JSON.stringify({ apiVersion: ADMISSION_V1, kind: 'AdmissionReview', request: { uid: 5 } }),
      ADMISSION_V1,
      /uid must be a string/,
    ],
  ])('rejects %s, keeping a recognised apiVersion', (_name, raw, apiVersion, message) => {
    const result = decodeAdmissionReview(body(raw));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.apiVersion).toBe(apiVersion);
    expect(result.message).toMatch(message);
  });
});

describe('podFromRequest', () => {
  it('drops managedFields and fills an empty namespace from the request', () => {
    const result = podFromRequest({
      uid: 'u',
      namespace: 'shop',
      object: { metadata: { generateName: 'web-', namespace: '', managedFields: [{ manager: 'kubectl' }] } },
    });
    expect(result).toEqual({ ok: true, pod: { metadata: { generateName: 'web-', namespace: 'shop' } } });
  });

  it('keeps the pod’s own namespace and does not mutate the request object', () => {
    const object = { metadata: { namespace: 'own', managedFields: [] } };
    const result = podFromRequest({ uid: 'u', namespace: 'shop', object });
    expect(result).toEqual({ ok: true, pod: { metadata: { namespace: 'own' } } });
    expect(object.metadata.managedFields).toEqual([]);
  });

  it.each([
    ['no object', undefined, /missing/],
    ['an array object', [], /must be a Pod object/],
    ['string metadata', { metadata: 'x' }, /metadata must be an object/],
    ['a numeric spec', { spec: 1 }, /spec must be an object/],
    ['a numeric name', { metadata: { name: 5 } }, /metadata.name must be a string/],
    ['non-string labels', { metadata: { labels: { a: 1 } } }, /labels must map strings to strings/],
    ['array annotations', { metadata: { annotations: ['x'] } }, /annotations must map/],
  ])('rejects %s', (_name, object, message) => {
    const result = podFromRequest({ uid: 'u', namespace: 'shop', object });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.message).toMatch(message);
  });
});

describe('handleAdmission', () => {
  const path = injectPath('/inject/prod/cluster/c1');

  it('answers an empty body with 400 before looking at the content type', async () => {
    const reply = await handleAdmission(
      { path, contentType: 'application/yaml', body: body('') },
      recordingDeps().deps,
    );
    expect(reply).toMatchObject({ status: 400, body: 'no body found\n', outcome: 'error' });
  });

  it('answers a non-JSON content type with 415', async () => {
    const reply = await handleAdmission(
      { path, contentType: 'application/yaml', body: body(review(ADMISSION_V1, POD)) },
      recordingDeps().deps,
    );
    expect(reply.status).toBe(415);
    expect(reply.body).toContain('invalid Content-Type');
  });

  it('injects with the resolved revision and path params and echoes apiVersion, kind and uid', async () => {
    const patch = [{ op: 'add', path: '/metadata/labels', value: { a: 'b' } }];
    const { deps, calls } = recordingDeps({ kind: 'injected', patch });
    for (const apiVersion of [ADMISSION_V1, ADMISSION_V1BETA1]) {
      const reply = await handleAdmission(
        { path, contentType: 'application/json', body: body(review(apiVersion, POD)) },
        deps,
      );
      expect(reply).toMatchObject({ status: 200, outcome: 'injected', revision: 'asm-1233-2' });
      const parsed = parsedReply(reply.body);
      expect(parsed).toMatchObject({ apiVersion, kind: 'AdmissionReview' });
      expect(parsed.response).toMatchObject({ uid: 'uid-123', allowed: true, patchType: 'JSONPatch' });
      expect(JSON.parse(Buffer.from(parsed.response.patch ?? '', 'base64').toString('utf8'))).toEqual(patch);
    }
    expect(calls[0]).toEqual({
      pod: { ...POD, metadata: { name: 'web', namespace: 'shop' } },
      namespace: 'shop',
      revision: 'asm-1233-2',
      pathParams: { ISTIO_META_CLUSTER_ID: 'c1' },
      review: { text: JSON.stringify(review(ADMISSION_V1, POD)), uid: 'uid-123' },
    });
  });

  it('allows a skipped pod without a patch', async () => {
    const reply = await handleAdmission(
      { path, contentType: 'application/json', body: body(review(ADMISSION_V1, POD)) },
      recordingDeps({ kind: 'skipped', reason: 'annotation false' }).deps,
    );
    expect(reply.outcome).toBe('skipped');
    expect(parsedReply(reply.body).response).toEqual({ uid: 'uid-123', allowed: true });
  });

  it('denies with the engine’s message when it rejects the pod', async () => {
    const reply = await handleAdmission(
      { path, contentType: 'application/json', body: body(review(ADMISSION_V1, POD)) },
      recordingDeps({ kind: 'rejected', message: 'bad traffic annotation' }).deps,
    );
    expect(reply).toMatchObject({ status: 200, outcome: 'rejected' });
    expect(parsedReply(reply.body).response).toEqual({
      uid: 'uid-123',
      allowed: false,
      status: { metadata: {}, message: 'bad traffic annotation' },
    });
  });

  it('denies with a message naming an unknown revision instead of failing the call', async () => {
    const { deps, calls } = recordingDeps();
    const reply = await handleAdmission(
      {
        path: injectPath('/inject/asm-9999-1'),
        contentType: 'application/json',
        body: body(review(ADMISSION_V1, POD)),
      },
      deps,
    );
    expect(reply).toMatchObject({ status: 200, outcome: 'error', revision: '' });
    const response = parsedReply(reply.body).response;
    expect(response.allowed).toBe(false);
    expect(response.uid).toBe('uid-123');
    expect(response.status?.message).toMatch(/no ControlPlaneRevision or RevisionTag named "asm-9999-1"/);
    expect(calls).toHaveLength(0);
  });

  it('denies a path without a revision', async () => {
    const reply = await handleAdmission(
      { path: injectPath('/inject'), contentType: 'application/json', body: body(review(ADMISSION_V1, POD)) },
      recordingDeps().deps,
    );
    expect(parsedReply(reply.body).response.status?.message).toMatch(/names no revision/);
  });

  it('turns a throwing engine or resolver into a denial, never an exception', async () => {
    const throwing: AdmissionDeps = {
      inject: () => {
        throw new Error('template exploded');
      },
      resolveTarget: () => ({ revision: 'r1' }),
    };
    const reply = await handleAdmission(
      { path, contentType: 'application/json', body: body(review(ADMISSION_V1, POD)) },
      throwing,
    );
    expect(parsedReply(reply.body).response.status?.message).toBe('injection failed: template exploded');
    expect(reply.revision).toBe('r1');

    const badResolver: AdmissionDeps = {
      inject: () => ({ kind: 'skipped', reason: '' }),
      resolveTarget: () => {
        throw new Error('cache not synced');
      },
    };
    const denied = await handleAdmission(
      { path, contentType: 'application/json', body: body(review(ADMISSION_V1, POD)) },
      badResolver,
    );
    expect(parsedReply(denied.body).response.allowed).toBe(false);
  });

  it('answers 500 only when the patch cannot be encoded', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const reply = await handleAdmission(
      { path, contentType: 'application/json', body: body(review(ADMISSION_V1, POD)) },
      recordingDeps({ kind: 'injected', patch: [circular] }).deps,
    );
    expect(reply.status).toBe(500);
    expect(reply.body).toContain('could not encode response');
  });

  it('answers an undecodable review with 200, allowed false, an empty uid and v1', async () => {
    const reply = await handleAdmission(
      { path, contentType: 'application/json', body: body('{"apiVersion":') },
      recordingDeps().deps,
    );
    expect(reply).toMatchObject({ status: 200, outcome: 'error' });
    const parsed = parsedReply(reply.body);
    expect(parsed.apiVersion).toBe(ADMISSION_V1);
    expect(parsed.response).toMatchObject({ uid: '', allowed: false });
  });
});
