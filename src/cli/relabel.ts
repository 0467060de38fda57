/**
 * Namespace relabelling for migrate and rollback, as pure data. Istio's upgrade guide moves a namespace to
 * a revision by removing `istio-injection` and setting `istio.io/rev`; the label set before is recorded in
 * an annotation so a rollback knows where to return (and a second rollback goes forward again).
 */
import { INJECTION_LABEL, REVISION_LABEL } from '../controllers/common/labels.js';
import type { NamespaceMeta } from './cluster.js';

export const PREVIOUS_REVISION_ANNOTATION = 'meshrev.dev/previous-revision';

/** What a namespace's injection labels say; `istio-injection` decides when both are set, as in Istio. */
export type InjectionSetting =
  { kind: 'revision'; value: string } | { kind: 'injection'; value: string } | { kind: 'none' };

export function currentSetting(labels: Readonly<Record<string, string>>): InjectionSetting {
  const injection = labels[INJECTION_LABEL];
  if (injection !== undefined) return { kind: 'injection', value: injection };
  const revision = labels[REVISION_LABEL];
  if (revision !== undefined) return { kind: 'revision', value: revision };
  return { kind: 'none' };
}

/**
 * The annotation's value: the `istio.io/rev` value itself, `istio-injection=<value>` (never a valid revision
 * name, so the two cannot be confused), or empty for a namespace that had no injection label.
 */
export function encodeSetting(setting: InjectionSetting): string {
  switch (setting.kind) {
    case 'revision':
      return setting.value;
    case 'injection':
      return `${INJECTION_LABEL}=${setting.value}`;
    case 'none':
      return '';
  }
}

export function decodeSetting(recorded: string): InjectionSetting {
  const trimmed = recorded.trim();
  if (trimmed === '') return { kind: 'none' };
  const prefix = `${INJECTION_LABEL}=`;
  if (trimmed.startsWith(prefix)) return { kind: 'injection', value: trimmed.slice(prefix.length) };
  return { kind: 'revision', value: trimmed };
}

export function describeSetting(setting: InjectionSetting): string {
  switch (setting.kind) {
    case 'revision':
      return `${REVISION_LABEL}=${setting.value}`;
    case 'injection':
      return `${INJECTION_LABEL}=${setting.value}`;
    case 'none':
      return 'no injection label';
  }
}

function sameSetting(a: InjectionSetting, b: InjectionSetting): boolean {
  return encodeSetting(a) === encodeSetting(b) && a.kind === b.kind;
}

/** Labels of a namespace after the move: `null` deletes a label in a JSON merge patch. */
export function labelsFor(setting: InjectionSetting): Record<string, string | null> {
  switch (setting.kind) {
    case 'revision':
      return { [INJECTION_LABEL]: null, [REVISION_LABEL]: setting.value };
    case 'injection':
      return { [INJECTION_LABEL]: setting.value, [REVISION_LABEL]: null };
    case 'none':
      return { [INJECTION_LABEL]: null, [REVISION_LABEL]: null };
  }
}

/** The namespace labels once a merge patch of `labelsFor(setting)` is applied. */
export function applyLabels(
  labels: Readonly<Record<string, string>>,
  setting: InjectionSetting,
): Record<string, string> {
  const result: Record<string, string> = { ...labels };
  for (const [key, value] of Object.entries(labelsFor(setting))) {
    if (value === null) delete result[key];
    else result[key] = value;
  }
  return result;
}

export interface RelabelPlan {
  namespace: string;
  from: InjectionSetting;
  to: InjectionSetting;
  /** The labels once moved, to resolve the revision new pods will get. */
  labelsAfter: Record<string, string>;
  /** JSON merge patch for the Namespace; unset when its labels already say `to`. */
  patch?: NamespacePatch;
}

export interface NamespacePatch {
  metadata: {
    /** Guards against a concurrent relabel: the API server answers 409 if the namespace changed since read. */
    resourceVersion?: string;
    labels: Record<string, string | null>;
    annotations: Record<string, string>;
  };
}

/**
 * Moves `ns` to `to`, recording where it came from. A namespace already there keeps its annotation so a
 * repeated migrate does not overwrite the way back with the current state.
 */
export function planRelabel(ns: NamespaceMeta, to: InjectionSetting): RelabelPlan {
  const from = currentSetting(ns.labels);
  // A stray istio.io/rev next to istio-injection would change meaning later, so only a clean set is "there".
  const clean = sameSetting(from, to) && (to.kind !== 'injection' || ns.labels[REVISION_LABEL] === undefined);
  const plan: RelabelPlan = { namespace: ns.name, from, to, labelsAfter: applyLabels(ns.labels, to) };
  if (clean) return plan;
  plan.patch = {
    metadata: {
      ...(ns.resourceVersion === undefined ? {} : { resourceVersion: ns.resourceVersion }),
      labels: labelsFor(to),
      annotations: { [PREVIOUS_REVISION_ANNOTATION]: encodeSetting(from) },
    },
  };
  return plan;
}

export function describePlan(plan: RelabelPlan): string {
  if (plan.patch === undefined) return `${plan.namespace}: already labelled ${describeSetting(plan.to)}`;
  return (
    `${plan.namespace}: relabel ${describeSetting(plan.from)} -> ${describeSetting(plan.to)} ` +
    `(records ${PREVIOUS_REVISION_ANNOTATION}="${encodeSetting(plan.from)}")`
  );
}
