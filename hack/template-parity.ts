// Istio's own injection templates, run as custom templates, against meshrev's built-in ones: for every case of the
// conformance corpus, the pod injected (and injected again) with the built-in templates must equal, exactly and
// without the conformance suite's normalisation, the pod injected with Istio's template texts given as
// spec.injection.templates. A difference is a gap in the Go template engine, in istiod's functions or in the data
// istiod hands its templates, which a user who copies Istio's template to change it would meet.
//
// Usage: node dist/hack/template-parity.js <dir>, where <dir> holds the istio-discovery chart's `files/` from the
// Istio commit the corpus was taken at (injection-template.yaml, gateway-injection-template.yaml, grpc-agent.yaml,
// grpc-simple.yaml; any that are absent are not replaced). The corpus comes from MESHREV_CONFORMANCE_DIR, as for
// the conformance suite. With `--release 1.30.3` both sides render as a revision of that Istio version, so a
// release's own templates check the lines meshrev's templates change per release (its images name that version on
// both sides). Nothing of Istio's is kept in this repository.

import {
  applyJsonPatch,
  kubeInjectDocuments,
  type InjectorSettings,
  type Pod,
} from '../src/injector/engine/index.js';
import { option, random } from './differential/common.js';
import { istioTemplates, podDifferences, TEMPLATE_FILE_NAMES } from './parity-common.js';
import { randomPod, randomSettings } from './template-parity-random.js';
import {
  baseSpec,
  caseSettings,
  corpusDir,
  corpusPresent,
  injectableDocs,
  isObject,
  injectInUpstreamCluster,
  NODE_MINORS,
  objectToPod,
  readDocs,
  readRows,
} from '../test/conformance/support/corpus.js';

/** The chart's file for each built-in template meshrev renders. */

const REJECTED = 'rejected: ';
/** Comparisons where both sides refused the pod, with different messages. */
let bothRefused = 0;

/** The pod after injection (or the rejection message), and after injecting that pod again. */
function injectTwice(
  doc: Record<string, unknown>,
  settings: InjectorSettings,
): { injected: unknown; reinjected: unknown } {
  const metadata = isObject(doc['metadata']) ? doc['metadata'] : {};
  const namespace = typeof metadata['namespace'] === 'string' ? metadata['namespace'] : '';
  return injectPodTwice(objectToPod(doc) as Pod, namespace, settings);
}

function injectPodTwice(
  pod: Pod,
  namespace: string,
  settings: InjectorSettings,
): { injected: unknown; reinjected: unknown } {
  const once = (pod: Pod): Pod | string => {
    const outcome = injectInUpstreamCluster(pod, namespace, settings);
    if (outcome.kind === 'rejected') return `${REJECTED}${outcome.message}`;
    return outcome.kind === 'injected' ? (applyJsonPatch(pod, outcome.patch) as Pod) : pod;
  };
  const first = once(structuredClone(pod));
  return { injected: first, reinjected: typeof first === 'string' ? first : once(first) };
}

/** Where the two sides' pods differ, injected and injected again; a pod both refuse agrees (in its own words). */
function differences(
  builtin: { injected: unknown; reinjected: unknown },
  istio: { injected: unknown; reinjected: unknown },
): string[] {
  const sides = { left: 'built-in', right: "Istio's template" };
  return (['injected', 'reinjected'] as const).flatMap((round) => {
    const [a, b] = [builtin[round], istio[round]];
    if (typeof a === 'string' && typeof b === 'string' && a.startsWith(REJECTED) && b.startsWith(REJECTED)) {
      bothRefused += 1;
      if (process.argv.includes('--show-refusals')) console.log(`both refused:\n  ${a}\n  ${b}`);
      return [];
    }
    return podDifferences(a, b, sides, `.${round}`);
  });
}

function main(): number {
  const dir = process.argv[2];
  const releaseAt = process.argv.indexOf('--release');
  const release = releaseAt > 0 ? process.argv[releaseAt + 1] : undefined;
  if (!dir || dir.startsWith('--') || (releaseAt > 0 && !release)) {
    console.error(
      'usage: node dist/hack/template-parity.js <istio-discovery chart files dir> [--release 1.30.3]',
    );
    return 2;
  }
  const templates = istioTemplates(dir);
  if (Object.keys(templates).length === 0) {
    console.error(`no Istio template in ${dir} (looked for ${TEMPLATE_FILE_NAMES.join(', ')})`);
    return 2;
  }
  const corpus = corpusDir();
  if (!corpusPresent(corpus)) {
    console.error(`Istio conformance corpus not found at ${corpus}: set MESHREV_CONFORMANCE_DIR`);
    return 2;
  }
  let compared = 0;
  const mismatches: string[] = [];
  for (const row of readRows(corpus)) {
    const plan = caseSettings(corpus, row);
    if (plan.kind === 'out-of-scope') continue;
    // The corpus's own custom templates (the SPIRE cases) stay on top of Istio's.
    const corpusSettings = release ? { ...plan.settings, tag: release } : plan.settings;
    const builtin = plan.kind === 'kube-inject' ? { ...corpusSettings, revision: '' } : corpusSettings;
    const istio = { ...builtin, customTemplates: { ...templates, ...builtin.customTemplates } };
    const title = `${row.input} → ${row.expected}${row.settings ? ` (${row.settings})` : ''}`;
    if (plan.kind === 'kube-inject') {
      compared += 1;
      const options = { nodeKubeletMinorVersions: NODE_MINORS };
      const want = kubeInjectDocuments(readDocs(corpus, row.input), builtin, options);
      const got = kubeInjectDocuments(readDocs(corpus, row.input), istio, options);
      const diff = podDifferences(want, got, { left: 'built-in', right: "Istio's template" });
      if (diff.length > 0) mismatches.push(`kube-inject ${title}\n  ${diff.join('\n  ')}`);
      continue;
    }
    for (const doc of injectableDocs(readDocs(corpus, row.input))) {
      compared += 1;
      const diff = differences(injectTwice(doc, builtin), injectTwice(doc, istio));
      if (diff.length > 0) mismatches.push(`${title}\n  ${diff.join('\n  ')}`);
    }
  }
  // Random pods and revision specs, replayable by seed: inputs the corpus does not hold.
  const randomCases = option('--random', 0);
  const seed = option('--seed', 1);
  const next = random(seed);
  for (let i = 0; i < randomCases; i++) {
    const settings = randomSettings(next, baseSpec(), release ?? 'latest');
    const { pod, namespace } = randomPod(next);
    const istio = { ...settings, customTemplates: { ...templates } };
    compared += 1;
    const diff = differences(injectPodTwice(pod, namespace, settings), injectPodTwice(pod, namespace, istio));
    if (diff.length > 0)
      mismatches.push(`random case ${i} (seed ${seed}): ${JSON.stringify(pod)}\n  ${diff.join('\n  ')}`);
  }
  for (const mismatch of mismatches.slice(0, option('--show', 20))) console.log(mismatch);
  console.log(
    `template parity (${Object.keys(templates).join(', ')} from ${dir}${release ? `, as Istio ${release}` : ''}): ` +
      `${compared - mismatches.length} of ${compared} pods (the corpus's${randomCases > 0 ? ` and ${randomCases} random ones, seed ${seed}` : ''}) injected identically, twice` +
      (bothRefused > 0 ? ` (${bothRefused} refusals, with their own messages, among them)` : ''),
  );
  return mismatches.length === 0 ? 0 : 1;
}

process.exitCode = main();
