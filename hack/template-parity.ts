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
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import {
  applyJsonPatch,
  kubeInjectDocuments,
  type InjectorSettings,
  type Pod,
} from '../src/injector/engine/index.js';
import { option, random } from './differential/common.js';
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
const TEMPLATE_FILES: Readonly<Record<string, string>> = {
  sidecar: 'injection-template.yaml',
  gateway: 'gateway-injection-template.yaml',
  'grpc-agent': 'grpc-agent.yaml',
  'grpc-simple': 'grpc-simple.yaml',
};

const REJECTED = 'rejected: ';
/** Comparisons where both sides refused the pod, with different messages. */
let bothRefused = 0;

function istioTemplates(dir: string): Record<string, string> {
  const templates: Record<string, string> = {};
  for (const [name, file] of Object.entries(TEMPLATE_FILES)) {
    const at = path.join(dir, file);
    if (existsSync(at)) templates[name] = readFileSync(at, 'utf8');
  }
  return templates;
}

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

/** Where two values differ, as JSON paths with both sides (containers, env and volumes matched by name). */
function differences(a: unknown, b: unknown, at = '', out: string[] = []): string[] {
  if (isDeepStrictEqual(a, b)) return out;
  // Both refuse the pod: the built-in templates say why in their own words, Istio's with the template's position.
  if (typeof a === 'string' && typeof b === 'string' && a.startsWith(REJECTED) && b.startsWith(REJECTED)) {
    bothRefused += 1;
    if (process.argv.includes('--show-refusals')) console.log(`both refused:\n  ${a}\n  ${b}`);
    return out;
  }
  const named = (list: unknown[]) => list.every((item) => isObject(item) && typeof item['name'] === 'string');
  if (Array.isArray(a) && Array.isArray(b) && named(a) && named(b)) {
    const names = (list: unknown[]) => list.map((item) => (item as { name: string }).name);
    if (!isDeepStrictEqual(names(a), names(b)))
      out.push(`${at}: names [${names(a).join(', ')}] vs [${names(b).join(', ')}]`);
    for (const name of new Set([...names(a), ...names(b)])) {
      const find = (list: unknown[]) => list.find((item) => (item as { name: string }).name === name);
      differences(find(a), find(b), `${at}[${name}]`, out);
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((item, i) => differences(item, b[i], `${at}[${i}]`, out));
    return out;
  }
  if (isObject(a) && isObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)]))
      differences(a[key], b[key], `${at}.${key}`, out);
    return out;
  }
  const shown = (value: unknown) => {
    const text = JSON.stringify(value) ?? 'absent';
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  };
  out.push(`${at}: ${shown(a)} (built-in) vs ${shown(b)} (Istio's template)`);
  return out;
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
    console.error(`no Istio template in ${dir} (looked for ${Object.values(TEMPLATE_FILES).join(', ')})`);
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
      const diff = differences(want, got);
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
