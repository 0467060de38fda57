// Reading deploy/: the kustomize manifests as objects, and the Helm chart's values. (The chart itself is
// rendered by a real helm in test/integration/chart.test.ts.)
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import { parse, parseAllDocuments } from 'yaml';

export const REPO_ROOT = join(import.meta.dirname, '..', '..', '..');
export const DEPLOY_DIR = join(REPO_ROOT, 'deploy');
export const CHART_DIR = join(DEPLOY_DIR, 'charts', 'meshrev');
export const CRD_FILES = [
  'crds/meshrev.dev_controlplanerevisions.yaml',
  'crds/meshrev.dev_revisiontags.yaml',
];

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function asKubeObject(value: unknown, source: string): KubeObject {
  if (
    !isRecord(value) ||
    typeof value['apiVersion'] !== 'string' ||
    typeof value['kind'] !== 'string' ||
    !isRecord(value['metadata']) ||
    typeof value['metadata']['name'] !== 'string'
  ) {
    throw new Error(`${source}: a document is not a Kubernetes object`);
  }
  return value as KubeObject;
}

/** Every document of a YAML stream; throws on a syntax error, skips empty documents (Helm does too). */
export function parseObjects(text: string, source: string): KubeObject[] {
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) throw new Error(`${source}: empty stream`);
  const objects: KubeObject[] = [];
  for (const document of documents) {
    if (document.errors.length > 0) throw new Error(`${source}: ${document.errors[0]!.message}`);
    const value: unknown = document.toJS();
    if (value !== null && value !== undefined) objects.push(asKubeObject(value, source));
  }
  return objects;
}

export function readObjects(path: string): KubeObject[] {
  return parseObjects(readFileSync(path, 'utf8'), relative(REPO_ROOT, path));
}

export interface Kustomization {
  resources: string[];
  namespace?: string;
  labels?: Array<{ pairs: Record<string, string> }>;
}

export function readKustomization(): Kustomization {
  return parse(readFileSync(join(DEPLOY_DIR, 'kustomization.yaml'), 'utf8')) as Kustomization;
}

/** YAML files directly in deploy/ (and deploy/crds/), the set the kustomization must list. */
export function deployManifestFiles(): string[] {
  const top = readdirSync(DEPLOY_DIR).filter(
    (file) => file.endsWith('.yaml') && file !== 'kustomization.yaml',
  );
  const crdDir = join(DEPLOY_DIR, 'crds');
  const crds = existsSync(crdDir)
    ? readdirSync(crdDir)
        .filter((file) => file.endsWith('.yaml'))
        .map((file) => `crds/${file}`)
    : [];
  return [...top, ...crds].sort();
}

/** The kustomization's objects, without CRD files that have not been generated yet. */
export function kustomizeObjects(): KubeObject[] {
  const kustomization = readKustomization();
  const labels = Object.assign({}, ...(kustomization.labels ?? []).map((entry) => entry.pairs)) as Record<
    string,
    string
  >;
  return kustomization.resources
    .map((resource) => join(DEPLOY_DIR, resource))
    .filter((path) => existsSync(path))
    .flatMap(readObjects)
    .map((object) => ({
      ...object,
      metadata: { ...object.metadata, labels: { ...object.metadata.labels, ...labels } },
    }));
}

export function chartValues(): Record<string, unknown> {
  return parse(readFileSync(join(CHART_DIR, 'values.yaml'), 'utf8')) as Record<string, unknown>;
}

export function objectId(object: KubeObject): string {
  return `${object.kind}/${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

export function findObject(
  objects: KubeObject[],
  kind: string,
  name: string,
  namespace?: string,
): KubeObject {
  const found = objects.find(
    (object) =>
      object.kind === kind &&
      object.metadata.name === name &&
      (namespace === undefined || object.metadata.namespace === namespace),
  );
  if (found === undefined) throw new Error(`no ${kind} ${namespace ?? ''}/${name}`);
  return found;
}
