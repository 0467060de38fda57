// What the parity tools (template-parity, istiod-parity) share: Istio's template files, and where two pods differ.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';

import { isObject } from '../src/injector/engine/types.js';

/** The istio-discovery chart's file for each built-in template meshrev renders. */
const TEMPLATE_FILES: Readonly<Record<string, string>> = {
  sidecar: 'injection-template.yaml',
  gateway: 'gateway-injection-template.yaml',
  'grpc-agent': 'grpc-agent.yaml',
  'grpc-simple': 'grpc-simple.yaml',
};

/** Istio's template texts in `dir` (the chart's `files/`), by template name; files that are absent are left out. */
export function istioTemplates(dir: string): Record<string, string> {
  const templates: Record<string, string> = {};
  for (const [name, file] of Object.entries(TEMPLATE_FILES)) {
    const at = path.join(dir, file);
    if (existsSync(at)) templates[name] = readFileSync(at, 'utf8');
  }
  return templates;
}

/** The file names istioTemplates looks for. */
export const TEMPLATE_FILE_NAMES = Object.values(TEMPLATE_FILES);

/**
 * The JSON paths at which `a` and `b` differ, each with both values (named `left` and `right`): lists of named
 * items (containers, env, volumes) are matched by name, other lists of the same length by index.
 */
export function podDifferences(
  a: unknown,
  b: unknown,
  sides: { left: string; right: string },
  at = '',
  out: string[] = [],
): string[] {
  if (isDeepStrictEqual(a, b)) return out;
  const named = (list: unknown[]) => list.every((item) => isObject(item) && typeof item['name'] === 'string');
  if (Array.isArray(a) && Array.isArray(b) && named(a) && named(b)) {
    const names = (list: unknown[]) => list.map((item) => (item as { name: string }).name);
    if (!isDeepStrictEqual(names(a), names(b)))
      out.push(`${at}: names [${names(a).join(', ')}] vs [${names(b).join(', ')}]`);
    for (const name of new Set([...names(a), ...names(b)])) {
      const find = (list: unknown[]) => list.find((item) => (item as { name: string }).name === name);
      podDifferences(find(a), find(b), sides, `${at}[${name}]`, out);
    }
    return out;
  }
  if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((item, i) => podDifferences(item, b[i], sides, `${at}[${i}]`, out));
    return out;
  }
  if (isObject(a) && isObject(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)]))
      podDifferences(a[key], b[key], sides, `${at}.${key}`, out);
    return out;
  }
  const shown = (value: unknown) => {
    const text = JSON.stringify(value) ?? 'absent';
    return text.length > 200 ? `${text.slice(0, 200)}…` : text;
  };
  out.push(`${at}: ${shown(a)} (${sides.left}) vs ${shown(b)} (${sides.right})`);
  return out;
}
