// Where two injected pods (or any two JSON values) differ, for the parity tools' reports.
import { isDeepStrictEqual } from 'node:util';

import { isObject } from '../src/injector/engine/types.js';

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
