// Pure AdmissionReview handling for the embedded sidecar injector: request path parsing, review decoding,
// response building and the HTTP status semantics of istiod's `serveInject` (see
// /work/shared/reference/istio-injection.md §2.1). No I/O here; server.ts streams the body and writes the reply.

/** istiod's `MaxRequestBodyBytes`: larger bodies are answered with HTTP 400 before any parsing. */
export const MAX_ADMISSION_BODY_BYTES = 6 * 1024 * 1024;

export const ADMISSION_V1 = 'admission.k8s.io/v1';
export const ADMISSION_V1BETA1 = 'admission.k8s.io/v1beta1';
export type AdmissionApiVersion = typeof ADMISSION_V1 | typeof ADMISSION_V1BETA1;

export interface InjectRequest {
  pod: Record<string, unknown>;
  namespace: string;
  revision: string;
  /** Proxy environment overrides from the request path, keyed by env name (see {@link parseInjectPath}). */
  pathParams: Record<string, string>;
  /** The AdmissionReview the pod arrived in, as text, and its request uid (for keying cached verdicts). */
  review?: { text: string; uid: string };
}

export type InjectResult =
  | { kind: 'skipped'; reason: string }
  /**
   * `patchJson`, when set, is `patch` already serialised; the reply then carries it without encoding again.
   * `patchBase64` is filled in by the first reply that encodes this verdict, so a cached verdict is encoded once.
   */
  | { kind: 'injected'; patch: unknown[]; patchJson?: string; patchBase64?: Buffer }
  | { kind: 'rejected'; message: string };

/** The injection engine. May be synchronous or asynchronous; a throw becomes an allowed:false response. */
export type InjectFn = (req: InjectRequest) => InjectResult | Promise<InjectResult>;

/** Maps the name in `/inject/<name>` (a revision or a tag) to the revision whose settings inject the pod. */
export type ResolveTargetFn = (nameFromPath: string) => { revision: string } | undefined;

export type AdmissionOutcome = 'injected' | 'skipped' | 'rejected' | 'error';

export interface HttpReply {
  status: number;
  contentType: 'application/json' | 'text/plain; charset=utf-8';
  /** Text, or bytes already encoded (a patch reply built from a cached encoding). */
  body: string | Buffer;
  /** Undefined when the request never reached admission handling (404, malformed path). */
  outcome?: AdmissionOutcome;
  /**
   * The resolved revision, or '' when the path named nothing known. Unresolved names are not echoed here because
   * this value becomes a metric label and any client could otherwise mint unbounded label values.
   */
  revision: string;
}

// ---------------------------------------------------------------------------------------------------------------
// Request path

/** URL keys istiod maps to specific proxy env names; every other key is upper-cased into an env name. */
const PATH_KEY_TO_ENV: Readonly<Record<string, string>> = {
  cluster: 'ISTIO_META_CLUSTER_ID',
  net: 'ISTIO_META_NETWORK',
};

export type InjectPathParse =
  | { kind: 'inject'; revisionName: string; pathParams: Record<string, string> }
  | { kind: 'not-found' }
  | { kind: 'malformed'; message: string };

/**
 * Parses `/inject/<revision-or-tag>[/<key>/<value>…]` (query string ignored: kube-apiserver appends `?timeout=10s`).
 *
 * Unlike istiod, which picks the revision by Service name, meshrev serves every revision from one Service, so the
 * first segment after `/inject/` is the revision (or tag). The rest follows istiod's `parseInjectEnvs`: key/value
 * pairs, `cluster` → `ISTIO_META_CLUSTER_ID`, `net` → `ISTIO_META_NETWORK`, any other key upper-cased, `--slash--`
 * in a value decoded to `/`, an odd trailing key ignored, and the deprecated
 * `/:ENV:key=value:ENV:key2=value2` form (values may contain `/`; entries without `=` or with an empty key ignored).
 * `/inject` and `/inject/` parse with an empty revision name, which later resolves to nothing.
 */
export function parseInjectPath(url: string): InjectPathParse {
  const queryAt = url.search(/[?#]/);
  const rawPath = queryAt === -1 ? url : url.slice(0, queryAt);
  if (rawPath !== '/inject' && !rawPath.startsWith('/inject/')) return { kind: 'not-found' };

  let path: string;
  try {
    // Go's server hands handlers the decoded path; %2F therefore splits segments there too.
    path = decodeURIComponent(rawPath);
  } catch {
    return { kind: 'malformed', message: 'malformed percent-encoding in request path' };
  }

  const afterInject = path.slice('/inject'.length).replace(/^\//, '');
  const trimmed = afterInject.endsWith('/') ? afterInject.slice(0, -1) : afterInject;
  const slashAt = trimmed.indexOf('/');
  const revisionName = slashAt === -1 ? trimmed : trimmed.slice(0, slashAt);
  const remainder = slashAt === -1 ? '' : trimmed.slice(slashAt + 1);
  return { kind: 'inject', revisionName, pathParams: envsFromPathRemainder(remainder) };
}

function envsFromPathRemainder(remainder: string): Record<string, string> {
  const pairs: Array<[string, string]> = [];
  if (remainder.startsWith(':ENV:')) {
    for (const entry of remainder.split(':ENV:').slice(1)) {
      const equalsAt = entry.indexOf('=');
      if (equalsAt > 0) pairs.push([entry.slice(0, equalsAt), entry.slice(equalsAt + 1)]);
    }
  } else if (remainder !== '') {
    const segments = remainder.split('/');
    for (let i = 0; i + 1 < segments.length; i += 2) {
      pairs.push([segments[i] ?? '', (segments[i + 1] ?? '').replaceAll('--slash--', '/')]);
    }
  }

  const envs: Record<string, string> = {};
  for (const [key, value] of pairs) {
    // Own keys only: `constructor` or `__proto__` in a path are env names like any other, as in istiod.
    const envName = Object.hasOwn(PATH_KEY_TO_ENV, key) ? (PATH_KEY_TO_ENV[key] ?? '') : key.toUpperCase();
    if (envName !== '') envs[envName] = value;
  }
  return envs;
}

// ---------------------------------------------------------------------------------------------------------------
// Content type

/**
 * istiod compares the header to `application/json` byte for byte. meshrev also accepts the same media type with
 * different letter case and an explicit `charset=utf-8` parameter: RFC 8259 makes UTF-8 the only JSON encoding, so
 * the two mean the same thing, and tools such as curl or fetch-based clients often add the parameter.
 * kube-apiserver always sends plain `application/json`, so this never changes behaviour for real admission
 * traffic. Any other parameter or charset is still 415.
 */
export function isAcceptedContentType(header: string | undefined): boolean {
  if (header === undefined) return false;
  const [mediaType, ...parameters] = header.split(';').map((part) => part.trim().toLowerCase());
  if (mediaType !== 'application/json') return false;
  return parameters.every((parameter) => /^charset="?utf-8"?$/.test(parameter));
}

// ---------------------------------------------------------------------------------------------------------------
// AdmissionReview decoding

export interface DecodedAdmissionReview {
  apiVersion: AdmissionApiVersion;
  request: { uid: string; namespace: string; object: unknown };
  /** The body as decoded text. */
  text: string;
}

export type ReviewDecodeResult =
  | { ok: true; review: DecodedAdmissionReview }
  | { ok: false; apiVersion: AdmissionApiVersion; message: string };

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Decodes an AdmissionReview the way a strict typed decoder would: the body must be a JSON object with
 * `apiVersion` admission.k8s.io/v1 or v1beta1, `kind: AdmissionReview`, and a `request` object whose `uid` and
 * `namespace` (when present) are strings. Failures keep the apiVersion when it was recognised so the reply can
 * still echo it; otherwise the reply uses v1, the version kube-apiserver sends to meshrev's webhooks.
 */
export function decodeAdmissionReview(body: Uint8Array): ReviewDecodeResult {
  return decodeAdmissionReviewText(
    Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'),
  );
}

/** {@link decodeAdmissionReview} of a body already decoded as UTF-8 text. */
export function decodeAdmissionReviewText(text: string): ReviewDecodeResult {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return {
      ok: false,
      apiVersion: ADMISSION_V1,
      message: `couldn't decode AdmissionReview: ${errorText(error)}`,
    };
  }
  if (!isPlainObject(parsed)) {
    return { ok: false, apiVersion: ADMISSION_V1, message: 'AdmissionReview must be a JSON object' };
  }

  const { apiVersion, kind, request } = parsed;
  if (typeof kind !== 'string' || kind === '') {
    return { ok: false, apiVersion: ADMISSION_V1, message: "Object 'Kind' is missing in AdmissionReview" };
  }
  if (apiVersion !== ADMISSION_V1 && apiVersion !== ADMISSION_V1BETA1) {
    const shown = typeof apiVersion === 'string' ? apiVersion : JSON.stringify(apiVersion ?? '');
    return {
      ok: false,
      apiVersion: ADMISSION_V1,
      message: `no kind "${kind}" is registered for version "${shown}"; want ${ADMISSION_V1} or ${ADMISSION_V1BETA1} AdmissionReview`,
    };
  }
  if (kind !== 'AdmissionReview') {
    return { ok: false, apiVersion, message: `no kind "${kind}" is registered for version "${apiVersion}"` };
  }
  if (request === undefined || request === null) {
    return { ok: false, apiVersion, message: 'admission review request is missing' };
  }
  if (!isPlainObject(request)) {
    return { ok: false, apiVersion, message: 'AdmissionReview.request must be an object' };
  }
  const { uid, namespace, object } = request;
  if (uid !== undefined && typeof uid !== 'string') {
    return { ok: false, apiVersion, message: 'AdmissionReview.request.uid must be a string' };
  }
  if (namespace !== undefined && typeof namespace !== 'string') {
    return { ok: false, apiVersion, message: 'AdmissionReview.request.namespace must be a string' };
  }
  return {
    ok: true,
    review: { apiVersion, request: { uid: uid ?? '', namespace: namespace ?? '', object }, text },
  };
}

const STRING_MAP_FIELDS = ['labels', 'annotations'] as const;

/**
 * Turns `request.object` into the pod handed to the engine: it must be an object whose `metadata`, `spec` and
 * `status` are objects when present and whose labels/annotations are string maps (what decoding into a typed Pod
 * would demand). `managedFields` is dropped (it only slows patch generation) and an empty namespace is filled from
 * the request, as istiod does for pods created by controllers.
 */
export function podFromRequest(
  request: DecodedAdmissionReview['request'],
): { ok: true; pod: Record<string, unknown> } | { ok: false; message: string } {
  const { object } = request;
  if (object === undefined || object === null)
    return { ok: false, message: 'request.object (the pod) is missing' };
  if (!isPlainObject(object)) return { ok: false, message: 'request.object must be a Pod object' };

  const metadataValue = object.metadata ?? {};
  if (!isPlainObject(metadataValue)) return { ok: false, message: 'pod metadata must be an object' };
  for (const field of ['spec', 'status'] as const) {
    const value = object[field];
    if (value !== undefined && value !== null && !isPlainObject(value)) {
      return { ok: false, message: `pod ${field} must be an object` };
    }
  }
  for (const field of ['name', 'generateName', 'namespace'] as const) {
    const value = metadataValue[field];
    if (value !== undefined && value !== null && typeof value !== 'string') {
      return { ok: false, message: `pod metadata.${field} must be a string` };
    }
  }
  for (const field of STRING_MAP_FIELDS) {
    const value = metadataValue[field];
    if (value === undefined || value === null) continue;
    if (!isPlainObject(value) || !Object.values(value).every((entry) => typeof entry === 'string')) {
      return { ok: false, message: `pod metadata.${field} must map strings to strings` };
    }
  }

  const metadata: Record<string, unknown> = { ...metadataValue };
  delete metadata.managedFields;
  if (typeof metadata.namespace !== 'string' || metadata.namespace === '')
    metadata.namespace = request.namespace;
  return { ok: true, pod: { ...object, metadata } };
}

/**
 * The pod an AdmissionReview's text carries, exactly as {@link handleAdmission} hands it to the injector: a render
 * thread is given the review's text (one string to copy, where the pod's object graph costs many times more to
 * clone) and decodes the pod again itself.
 */
export function podFromReviewText(
  text: string,
): { ok: true; pod: Record<string, unknown> } | { ok: false; message: string } {
  const decoded = decodeAdmissionReviewText(text);
  return decoded.ok ? podFromRequest(decoded.review.request) : { ok: false, message: decoded.message };
}

// ---------------------------------------------------------------------------------------------------------------
// Replies

export interface AdmissionResponseBody {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  status?: { metadata: Record<string, never>; message: string };
}

export interface AdmissionReviewReply {
  apiVersion: AdmissionApiVersion;
  kind: 'AdmissionReview';
  response: AdmissionResponseBody;
}

export function textReply(status: number, message: string): HttpReply {
  return { status, contentType: 'text/plain; charset=utf-8', body: `${message}\n`, revision: '' };
}

export function bodyTooLargeReply(limitBytes: number = MAX_ADMISSION_BODY_BYTES): HttpReply {
  return { ...textReply(400, `Request entity too large: limit is ${limitBytes}`), outcome: 'error' };
}

function reviewReply(
  apiVersion: AdmissionApiVersion,
  response: AdmissionResponseBody,
  outcome: AdmissionOutcome,
  revision: string,
): HttpReply {
  const review: AdmissionReviewReply = { apiVersion, kind: 'AdmissionReview', response };
  return { status: 200, contentType: 'application/json', body: JSON.stringify(review), outcome, revision };
}

function deniedReply(
  apiVersion: AdmissionApiVersion,
  uid: string,
  message: string,
  revision = '',
): HttpReply {
  return reviewReply(
    apiVersion,
    { uid, allowed: false, status: { metadata: {}, message } },
    'error',
    revision,
  );
}

function errorText(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === 'string' ? error : 'unknown error';
}

// ---------------------------------------------------------------------------------------------------------------
// The whole admission exchange

export interface AdmissionHttpRequest {
  /** The result of {@link parseInjectPath} for a path that is an inject path. */
  path: { revisionName: string; pathParams: Record<string, string> };
  contentType: string | undefined;
  /** The complete body; the caller has already enforced the size limit. */
  body: Uint8Array;
}

export interface AdmissionDeps {
  inject: InjectFn;
  resolveTarget: ResolveTargetFn;
}

/**
 * One injection request from an already size-checked body to the HTTP reply. Status codes follow istiod: empty
 * body 400, wrong content type 415, everything after that 200 with the verdict in the review (500 only when the
 * engine's patch cannot be serialised). An unknown revision is answered with allowed:false rather than 404:
 * kube-apiserver shows a webhook's denial message to the user (`admission webhook "…" denied the request: no
 * ControlPlaneRevision or RevisionTag named "x"…`), whereas a 404 is reported as an opaque call failure and, under
 * `failurePolicy: Ignore`, would silently create the pod without a sidecar.
 */
export async function handleAdmission(req: AdmissionHttpRequest, deps: AdmissionDeps): Promise<HttpReply> {
  if (req.body.byteLength === 0) return { ...textReply(400, 'no body found'), outcome: 'error' };
  if (!isAcceptedContentType(req.contentType)) {
    return { ...textReply(415, 'invalid Content-Type, want `application/json`'), outcome: 'error' };
  }

  const decoded = decodeAdmissionReview(req.body);
  if (!decoded.ok) return deniedReply(decoded.apiVersion, '', decoded.message);
  const { apiVersion, request } = decoded.review;

  const podResult = podFromRequest(request);
  if (!podResult.ok) return deniedReply(apiVersion, request.uid, podResult.message);

  const { revisionName, pathParams } = req.path;
  const target = revisionName === '' ? undefined : safeResolve(deps.resolveTarget, revisionName);
  if (target === undefined) {
    const message =
      revisionName === ''
        ? 'meshrev injector: the webhook path names no revision; expected /inject/<revision-or-tag>'
        : `meshrev injector: no ControlPlaneRevision or RevisionTag named "${revisionName}" ` +
          `(webhook path /inject/${revisionName}); the pod cannot be injected`;
    return deniedReply(apiVersion, request.uid, message);
  }
  const { revision } = target;
  const namespace =
    request.namespace !== '' ? request.namespace : String(metadataOf(podResult.pod).namespace ?? '');

  let result: InjectResult;
  try {
    result = await deps.inject({
      pod: podResult.pod,
      namespace,
      revision,
      pathParams,
      review: { text: decoded.review.text, uid: request.uid },
    });
  } catch (error) {
    return deniedReply(apiVersion, request.uid, `injection failed: ${errorText(error)}`, revision);
  }

  const uid = request.uid;
  switch (result?.kind) {
    case 'skipped':
      return reviewReply(apiVersion, { uid, allowed: true }, 'skipped', revision);
    case 'rejected':
      return reviewReply(
        apiVersion,
        { uid, allowed: false, status: { metadata: {}, message: result.message } },
        'rejected',
        revision,
      );
    case 'injected': {
      const encodedPatch = encodedPatchOf(result);
      if (encodedPatch === undefined) {
        return { ...textReply(500, 'could not encode response: JSON patch is not serialisable'), revision };
      }
      return patchReply(apiVersion, uid, encodedPatch, revision);
    }
    default:
      return deniedReply(apiVersion, uid, 'injection failed: the injector returned no verdict', revision);
  }
}

function safeResolve(resolveTarget: ResolveTargetFn, name: string): { revision: string } | undefined {
  try {
    const target = resolveTarget(name);
    return target !== undefined && typeof target.revision === 'string' && target.revision !== ''
      ? target
      : undefined;
  } catch {
    return undefined;
  }
}

function metadataOf(pod: Record<string, unknown>): Record<string, unknown> {
  return isPlainObject(pod.metadata) ? pod.metadata : {};
}

/**
 * The verdict's patch as base64 bytes, kept on the verdict: a verdict cache hands the same result object back for
 * every replica whose patch it can reuse as is (see InjectionService), so its encoding is done once. (A field
 * rather than a WeakMap: a weak entry per admission made the collector's ephemeron work grow with traffic.)
 */
function encodedPatchOf(result: {
  patch: unknown;
  patchJson?: string;
  patchBase64?: Buffer;
}): Buffer | undefined {
  if (result.patchBase64 !== undefined) return result.patchBase64;
  let json = result.patchJson;
  if (json === undefined) {
    if (!Array.isArray(result.patch)) return undefined;
    try {
      json = JSON.stringify(result.patch);
    } catch {
      return undefined;
    }
  }
  // Base64 is ASCII, so its latin1 bytes are its UTF-8 bytes.
  const encoded = Buffer.from(Buffer.from(json, 'utf8').toString('base64'), 'latin1');
  result.patchBase64 = encoded;
  return encoded;
}

const PATCH_REPLY_END = Buffer.from('"}}', 'utf8');

/**
 * The allowed-with-patch review, written out directly as bytes: the same document `reviewReply` would produce,
 * without JSON.stringify scanning the (often 10 KB) base64 patch for characters it never contains, and without
 * encoding that patch again for every reply that carries it.
 */
function patchReply(
  apiVersion: AdmissionApiVersion,
  uid: string,
  base64Patch: Buffer,
  revision: string,
): HttpReply {
  const head =
    `{"apiVersion":${JSON.stringify(apiVersion)},"kind":"AdmissionReview","response":{"uid":${JSON.stringify(uid)},` +
    `"allowed":true,"patchType":"JSONPatch","patch":"`;
  const body = Buffer.concat([Buffer.from(head, 'utf8'), base64Patch, PATCH_REPLY_END]);
  return { status: 200, contentType: 'application/json', body, outcome: 'injected', revision };
}

// ---------------------------------------------------------------------------------------------------------------
// Validation (`/validate/<resource>`): meshrev's own ValidatingWebhookConfiguration, e.g. refusing to delete a
// ControlPlaneRevision that workloads still use (src/controllers/revision/deletion.ts decides).

export const VALIDATE_PATH_PREFIX = '/validate/';

/** The resource named by `/validate/<resource>` (query ignored), or undefined for any other path. */
export function parseValidatePath(url: string): string | undefined {
  const queryAt = url.search(/[?#]/);
  const path = queryAt === -1 ? url : url.slice(0, queryAt);
  if (!path.startsWith(VALIDATE_PATH_PREFIX)) return undefined;
  const resource = path.slice(VALIDATE_PATH_PREFIX.length).replace(/\/$/, '');
  return /^[a-z0-9.-]+$/.test(resource) ? resource : undefined;
}

export interface ValidationRequest {
  resource: string;
  operation: string;
  name: string;
  namespace: string;
  object: unknown;
  oldObject: unknown;
}

export type ValidationAnswer = { allowed: true; warnings?: string[] } | { allowed: false; message: string };

/** Decides one validation request; undefined when nothing validates `resource` (answered 404). */
export type ValidateFn = (req: ValidationRequest) => Promise<ValidationAnswer> | ValidationAnswer;

/**
 * One validation request to its HTTP reply. A refusal carries code 403 and reason Forbidden, so kubectl prints
 * `Error from server (Forbidden): admission webhook "…" denied the request: <message>`; warnings of an allowed
 * request are shown by kubectl as `Warning: …`. A validator that throws denies with the error text; the
 * configuration's failurePolicy only applies when the webhook cannot be called at all.
 */
export async function handleValidation(
  req: { resource: string; contentType: string | undefined; body: Uint8Array },
  validate: ValidateFn,
): Promise<HttpReply> {
  if (req.body.byteLength === 0) return textReply(400, 'no body found');
  if (!isAcceptedContentType(req.contentType))
    return textReply(415, 'invalid Content-Type, want `application/json`');
  const decoded = decodeAdmissionReview(req.body);
  if (!decoded.ok) return deniedReply(decoded.apiVersion, '', decoded.message);
  const { apiVersion, request } = decoded.review;
  // The envelope is valid (decoded above); read the fields only validation needs from the same body.
  const raw = (JSON.parse(Buffer.from(req.body).toString('utf8')) as { request: Record<string, unknown> })
    .request;
  let answer: ValidationAnswer;
  try {
    answer = await validate({
      resource: req.resource,
      operation: typeof raw.operation === 'string' ? raw.operation : '',
      name: typeof raw.name === 'string' ? raw.name : '',
      namespace: request.namespace,
      object: request.object,
      oldObject: raw.oldObject,
    });
  } catch (error) {
    return deniedReply(apiVersion, request.uid, `validation failed: ${errorText(error)}`);
  }
  const response = answer.allowed
    ? { uid: request.uid, allowed: true, ...(answer.warnings?.length ? { warnings: answer.warnings } : {}) }
    : {
        uid: request.uid,
        allowed: false,
        status: { metadata: {}, code: 403, reason: 'Forbidden', message: answer.message },
      };
  return {
    status: 200,
    contentType: 'application/json',
    body: JSON.stringify({ apiVersion, kind: 'AdmissionReview', response }),
    revision: '',
  };
}
