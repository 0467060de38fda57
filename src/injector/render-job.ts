// One run of the injection engine as the injector needs it for a reply: the verdict, and for an injected pod its
// JSON Patch already serialised and base64-encoded. The same pure function runs on the main thread and in render
// threads (render-thread.ts), so a verdict never depends on where it was computed. The messages a render thread
// exchanges with its pool (render-pool.ts) are defined here too, beside the job they carry.
import { podFromReviewText } from './admission.js';
import { injectPod } from './engine/index.js';
import type { ProxyConfigLayers } from './engine/proxy-config-resources.js';
import type { InjectorSettings } from './engine/settings.js';
import type { Pod } from './engine/types.js';

/**
 * Where the pod comes from: the AdmissionReview text it was decoded from (for a render thread: one string to copy
 * instead of an object graph to clone, a tenth of the cost for a small pod and a twentieth for one with 2,000 env
 * vars), or the pod itself.
 */
export type RenderInput = { reviewText: string } | { pod: Record<string, unknown> };

export interface RenderJob {
  input: RenderInput;
  namespace: string;
  pathParams: Record<string, string>;
  nodeKubeletMinorVersions?: number[];
  podNodeKubeletMinor?: number;
  /** The ProxyConfig resources that apply to the pod, chosen on the main thread (which holds the informer). */
  proxyConfigLayers?: ProxyConfigLayers;
}

export type RenderedVerdict =
  | { kind: 'skipped'; reason: string }
  | { kind: 'rejected'; message: string }
  /** `patchBase64` is `patchJson`'s UTF-8 bytes in base64: what the admission reply carries. */
  | { kind: 'injected'; patchJson: string; patchBase64: string };

/** Runs the engine for one job. Throws what the engine throws (the caller answers with a denial). */
export function renderJob(job: RenderJob, settings: InjectorSettings): RenderedVerdict {
  const outcome = injectPod({
    pod: podOf(job.input) as Pod,
    namespace: job.namespace,
    settings,
    pathParams: job.pathParams,
    ...(job.nodeKubeletMinorVersions === undefined
      ? {}
      : { nodeKubeletMinorVersions: job.nodeKubeletMinorVersions }),
    ...(job.podNodeKubeletMinor === undefined ? {} : { podNodeKubeletMinor: job.podNodeKubeletMinor }),
    ...(job.proxyConfigLayers === undefined ? {} : { proxyConfigLayers: job.proxyConfigLayers }),
  });
  switch (outcome.kind) {
    case 'skipped':
      return { kind: 'skipped', reason: outcome.reason };
    case 'rejected':
      return { kind: 'rejected', message: outcome.message };
    case 'injected': {
      const patchJson = JSON.stringify(outcome.patch);
      return { kind: 'injected', patchJson, patchBase64: Buffer.from(patchJson, 'utf8').toString('base64') };
    }
  }
}

function podOf(input: RenderInput): Record<string, unknown> {
  if ('pod' in input) return input.pod;
  const decoded = podFromReviewText(input.reviewText);
  // The main thread decoded the same text before it sent the job, so this only fails if the two disagree.
  if (!decoded.ok) throw new Error(`render thread could not decode the review: ${decoded.message}`);
  return decoded.pod;
}

// ---------------------------------------------------------------------------------------------------------------
// The render thread protocol

/**
 * A job for a render thread. A revision's settings travel once per thread: with the first job that uses them,
 * under an id the pool gives each settings object, and `retire` names ids the thread may forget (the same
 * revision's older settings; every job that used them was posted before this one).
 */
export interface RenderThreadRequest {
  id: number;
  settingsId: number;
  settings?: InjectorSettings;
  retire?: number[];
  job: RenderJob;
}

/** `renderMs`: the thread's time on the job, which the pool counts as load taken off the main thread. */
export type RenderThreadReply =
  | { id: number; verdict: RenderedVerdict; renderMs?: number }
  /** The engine threw, or the thread lacked the settings; the pool's caller renders on its own thread instead. */
  | { id: number; failed: string; renderMs?: number };

/** What a thread posts: replies to jobs, and once, when it has loaded the engine, that it is ready for them. */
export type RenderThreadMessage = RenderThreadReply | { ready: true };

/** The thread side of the protocol, apart from the port it listens on (a unit test drives it directly). */
export function renderThreadHandler(): (request: RenderThreadRequest) => RenderThreadReply {
  const settingsById = new Map<number, InjectorSettings>();
  return ({ id, settingsId, settings, retire, job }) => {
    for (const old of retire ?? []) settingsById.delete(old);
    if (settings !== undefined) settingsById.set(settingsId, settings);
    const known = settingsById.get(settingsId);
    if (known === undefined) return { id, failed: `render thread has no settings ${settingsId}` };
    const started = performance.now();
    try {
      return { id, verdict: renderJob(job, known), renderMs: performance.now() - started };
    } catch (error) {
      return {
        id,
        failed: error instanceof Error ? error.message : String(error),
        renderMs: performance.now() - started,
      };
    }
  };
}
