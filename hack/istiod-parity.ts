// meshrev's injector against istiod's own (hack/istiod-parity/main.go, built from the istio.io/istio module): the
// corpus's pods and random pods and revision specs (template-parity-random.ts), each injected by both, with istiod
// given the injector ConfigMap and mesh config meshrev derives from the same settings and Istio's template files.
// The injected pods are compared after the conformance suite's normalisation of Go's round trip; a pod both refuse
// agrees. Where template-parity compares meshrev's engine with Istio's templates run by meshrev, this runs istiod's
// code: its webhook handler, probe rewriting, overrides, Prometheus merge, container ordering and status.
//
// Usage: node dist/hack/istiod-parity.js <istiod binary> <istio-discovery chart files dir> [--random N] [--seed S]
//   [--native true|false] [--show K]. The binary reads ENABLE_NATIVE_SIDECARS when it starts; --native sets it and
// meshrev's proxy.nativeSidecars alike (istiod's auto mode reads nodes, which the in-process webhook has none of).
import { spawnSync } from 'node:child_process';
import { isDeepStrictEqual } from 'node:util';

import { stringify } from 'yaml';

import { meshConfigOf, valuesOf } from '../src/injector/engine/custom-templates.js';
import {
  applyJsonPatch,
  canonicalQuantity,
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
  injectInUpstreamCluster,
  isObject,
  normalize,
  objectToPod,
  readDocs,
  readRows,
} from '../test/conformance/support/corpus.js';

interface Case {
  title: string;
  pod: Pod;
  namespace: string;
  settings: InjectorSettings;
}

interface IstiodAnswer {
  status: number;
  base?: Pod;
  response?: { response?: { allowed?: boolean; patch?: string; status?: { message?: string } } };
  error?: string;
}

/** What istiod reads from its injector ConfigMap's `config` key for these settings. */
function injectorConfig(settings: InjectorSettings, templates: Record<string, string>): string {
  return stringify({
    policy: settings.policy,
    alwaysInjectSelector: settings.alwaysInjectSelector,
    neverInjectSelector: settings.neverInjectSelector,
    injectedAnnotations: settings.injectedAnnotations,
    defaultTemplates: settings.defaultTemplates,
    aliases: settings.aliases,
    templates: { ...templates, ...settings.customTemplates },
  });
}

function review(c: Case): unknown {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: 'parity',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      namespace: c.namespace,
      operation: 'CREATE',
      object: c.pod,
    },
  };
}

/** The pod meshrev leaves (raw, for the next round), or 'refused'. */
function meshrevInjects(c: Case): Pod | 'refused' {
  const outcome = injectInUpstreamCluster(structuredClone(c.pod), c.namespace, c.settings);
  if (outcome.kind === 'rejected') return 'refused';
  return outcome.kind === 'injected' ? (applyJsonPatch(c.pod, outcome.patch) as Pod) : c.pod;
}

/** The pod istiod leaves: its patch applied to the pod as its Go structs write it, or 'refused'. */
function istiodInjects(answer: IstiodAnswer): Pod | string {
  const response = answer.response?.response;
  if (!response || !answer.base) return `istiod answered ${answer.status}: ${answer.error ?? ''}`;
  if (response.allowed === false) return 'refused';
  if (!response.patch) return answer.base;
  const patch = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Parameters<
    typeof applyJsonPatch
  >[1];
  return applyJsonPatch(answer.base, patch) as Pod;
}

/** What istiod reads from its process environment when it starts. */
interface IstiodEnvironment {
  native: boolean;
  compliancePolicy: string;
}

/** Runs every case through istiod's webhook, in one process started with `environment`. */
function askIstiod(
  binary: string,
  environment: IstiodEnvironment,
  cases: readonly Case[],
  templates: Record<string, string>,
): Array<Pod | string> {
  const input = cases.map((c) =>
    JSON.stringify({
      config: injectorConfig(c.settings, templates),
      values: JSON.stringify(valuesOf(c.settings)),
      mesh: JSON.stringify(meshConfigOf(c.settings)),
      revision: c.settings.revision === 'default' ? '' : c.settings.revision,
      review: review(c),
    }),
  );
  const istiod = spawnSync(binary, [], {
    input: `${input.join('\n')}\n`,
    maxBuffer: 1 << 30,
    env: {
      ...process.env,
      ENABLE_NATIVE_SIDECARS: environment.native ? 'true' : 'false',
      COMPLIANCE_POLICY: environment.compliancePolicy,
    },
  });
  if (istiod.status !== 0) throw new Error(`${binary} failed: ${istiod.stderr.toString().slice(0, 2000)}`);
  return istiod.stdout
    .toString()
    .trim()
    .split('\n')
    .map((line) => istiodInjects(JSON.parse(line) as IstiodAnswer));
}

const comparable = (outcome: Pod | string): unknown =>
  typeof outcome === 'string' ? outcome : normalize(outcome, canonicalQuantity);

function main(): number {
  const [binary, filesDir] = process.argv.slice(2);
  if (!binary || !filesDir) {
    console.error(
      'usage: node dist/hack/istiod-parity.js <istiod binary> <chart files dir> [--random N] [--seed S] [--native true|false]',
    );
    return 2;
  }
  const templates = istioTemplates(filesDir);
  if (Object.keys(templates).length === 0) {
    console.error(`no Istio template in ${filesDir} (looked for ${TEMPLATE_FILE_NAMES.join(', ')})`);
    return 2;
  }
  const nativeAt = process.argv.indexOf('--native');
  const native = nativeAt > 0 ? process.argv[nativeAt + 1] === 'true' : true;
  const complianceAt = process.argv.indexOf('--compliance');
  const compliancePolicy = complianceAt > 0 ? (process.argv[complianceAt + 1] ?? '') : '';
  const environment: IstiodEnvironment = { native, compliancePolicy };
  // A case runs only in the process whose environment it names; the rest of its settings are its own.
  const runs = (settings: InjectorSettings): boolean =>
    settings.platform !== 'openshift' &&
    (settings.compliancePolicy === '' || settings.compliancePolicy === compliancePolicy);
  const withMode = (settings: InjectorSettings): InjectorSettings => ({
    ...settings,
    nativeSidecars: native ? 'true' : 'false',
    compliancePolicy,
  });

  const cases: Case[] = [];
  const corpus = corpusDir();
  if (corpusPresent(corpus)) {
    for (const row of readRows(corpus)) {
      const plan = caseSettings(corpus, row);
      if (plan.kind !== 'webhook') continue;
      // istiod reads its compliance policy and platform from its process environment when it starts.
      if (!runs(plan.settings)) continue;
      for (const doc of injectableDocs(readDocs(corpus, row.input))) {
        const metadata = isObject(doc['metadata']) ? doc['metadata'] : {};
        cases.push({
          title: `${row.input} (${row.settings})`,
          pod: objectToPod(doc) as Pod,
          namespace: typeof metadata['namespace'] === 'string' ? metadata['namespace'] : '',
          settings: withMode(plan.settings),
        });
      }
    }
  }
  const seed = option('--seed', 1);
  const next = random(seed);
  for (let i = 0; i < option('--random', 0); i++) {
    const settings = randomSettings(next, baseSpec(), 'latest');
    const { pod, namespace } = randomPod(next);
    if (!runs(settings)) continue;
    cases.push({ title: `random ${i} (seed ${seed})`, pod, namespace, settings: withMode(settings) });
  }

  // Round one injects each pod; round two injects each side's own result again, as a re-invocation would.
  const again = (c: Case, pod: Pod | string): Case => (typeof pod === 'string' ? c : { ...c, pod });
  const first = askIstiod(binary, environment, cases, templates);
  const second = askIstiod(
    binary,
    environment,
    cases.map((c, i) => again(c, first[i] ?? '')),
    templates,
  );
  const ours = cases.map(meshrevInjects);
  const oursAgain = cases.map((c, i) => {
    const pod = ours[i] ?? 'refused';
    return typeof pod === 'string' ? pod : meshrevInjects(again(c, pod));
  });

  // First injections are compared case by case; re-injections separately, since meshrev re-applies recorded
  // overrides where istiod lets the template win (README: re-injection is idempotent in meshrev).
  let sameFirst = 0;
  let sameBoth = 0;
  let refused = 0;
  let reported = 0;
  const shown = option('--show', 10);
  cases.forEach((c, i) => {
    const mine = { injected: comparable(ours[i] ?? ''), reinjected: comparable(oursAgain[i] ?? '') };
    const theirs = { injected: comparable(first[i] ?? ''), reinjected: comparable(second[i] ?? '') };
    if (isDeepStrictEqual(mine.injected, theirs.injected)) {
      sameFirst += 1;
      if (mine.injected === 'refused') refused += 1;
    }
    if (isDeepStrictEqual(mine, theirs)) {
      sameBoth += 1;
      return;
    }
    if (reported++ < shown) {
      const differences = podDifferences(mine, theirs, { left: 'meshrev', right: 'istiod' });
      console.log(`${c.title}: ${JSON.stringify(c.pod).slice(0, 600)}\n  ${differences.join('\n  ')}`);
    }
  });
  console.log(
    `istiod parity (native sidecars ${native ? 'on' : 'off'}${compliancePolicy ? `, ${compliancePolicy}` : ''}): ${sameFirst} of ${cases.length} pods injected alike ` +
      `by meshrev and istiod (${refused} refused by both); ${sameBoth} also alike when injected again`,
  );
  return sameFirst === cases.length ? 0 : 1;
}

process.exitCode = main();
