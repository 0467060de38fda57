import {
  applyJsonPatch,
  escapePointerToken,
  pointer,
  unescapePointerToken,
} from '../../../../src/injector/engine/index.js';
import { arrayEditOps, mapEditOps } from '../../../../src/injector/engine/json-patch.js';

describe('JSON pointer escaping', () => {
  test.each([
    ['sidecar.istio.io/status', 'sidecar.istio.io~1status'],
    ['a~b', 'a~0b'],
    ['~1', '~01'],
    ['/~', '~1~0'],
    ['plain', 'plain'],
  ])('%j escapes to %j and back', (raw, escaped) => {
    expect(escapePointerToken(raw)).toBe(escaped);
    expect(unescapePointerToken(escaped)).toBe(raw);
  });

  test('pointer joins escaped tokens', () => {
    expect(pointer('metadata', 'annotations', 'prometheus.io/port')).toBe(
      '/metadata/annotations/prometheus.io~1port',
    );
  });

  test('an annotation key with a slash is addressed through its escaped form', () => {
    const doc = { metadata: { annotations: { 'a/b': '1' } } };
    const out = applyJsonPatch(doc, [
      { op: 'replace', path: pointer('metadata', 'annotations', 'a/b'), value: '2' },
    ]);
    expect(out).toEqual({ metadata: { annotations: { 'a/b': '2' } } });
  });
});

describe('applyJsonPatch', () => {
  test('leaves its input untouched', () => {
    const doc = { list: [1, 2] };
    applyJsonPatch(doc, [{ op: 'add', path: '/list/-', value: 3 }]);
    expect(doc).toEqual({ list: [1, 2] });
  });

  test('supports every RFC 6902 operation', () => {
    const out = applyJsonPatch({ a: 1, b: [1, 2, 3], c: { d: 'x' } }, [
      { op: 'test', path: '/a', value: 1 },
      { op: 'add', path: '/b/1', value: 9 },
      { op: 'remove', path: '/b/0' },
      { op: 'replace', path: '/a', value: 2 },
      { op: 'copy', from: '/c', path: '/e' },
      { op: 'move', from: '/c/d', path: '/f' },
    ]);
    expect(out).toEqual({ a: 2, b: [9, 2, 3], c: {}, e: { d: 'x' }, f: 'x' });
  });

  test.each([
    [{ op: 'remove' as const, path: '/missing' }],
    [{ op: 'replace' as const, path: '/missing', value: 1 }],
    [{ op: 'add' as const, path: '/a/b/c', value: 1 }],
    [{ op: 'add' as const, path: '/list/5', value: 1 }],
    [{ op: 'test' as const, path: '/list/0', value: 2 }],
  ])('a failing operation %j fails the whole patch', (op) => {
    expect(() => applyJsonPatch({ list: [1] }, [op])).toThrow();
  });
});

describe('edit scripts', () => {
  test('an array edit keeps untouched elements and rebuilds the target order', () => {
    const a = { name: 'a' };
    const b = { name: 'b' };
    const c = { name: 'c' };
    const before = [a, b, c];
    const after = [{ name: 'new' }, a, c, { name: 'b2' }];
    const ops = arrayEditOps('/spec/containers', before, after);
    expect(ops.filter((o) => o.op === 'remove').map((o) => o.path)).toEqual(['/spec/containers/1']);
    expect(applyJsonPatch({ spec: { containers: before } }, ops)).toEqual({ spec: { containers: after } });
  });

  test('reordered elements are moved by remove and add', () => {
    const a = { name: 'a' };
    const b = { name: 'b' };
    const ops = arrayEditOps('/x', [a, b], [b, a]);
    expect(applyJsonPatch({ x: [a, b] }, ops)).toEqual({ x: [b, a] });
  });

  test('an absent array is added whole, an unchanged one yields nothing', () => {
    const a = { name: 'a' };
    expect(arrayEditOps('/x', undefined, [a])).toEqual([{ op: 'add', path: '/x', value: [a] }]);
    expect(arrayEditOps('/x', [a], [a])).toEqual([]);
  });

  test('map edits address keys by escaped pointer', () => {
    const ops = mapEditOps(
      '/metadata/labels',
      { 'x/y': '1', keep: 'k', gone: 'g' },
      { 'x/y': '2', keep: 'k', 'new~': 'n' },
    );
    expect(ops).toEqual([
      { op: 'remove', path: '/metadata/labels/gone' },
      { op: 'replace', path: '/metadata/labels/x~1y', value: '2' },
      { op: 'add', path: '/metadata/labels/new~0', value: 'n' },
    ]);
  });
});

describe('patches for lists of named elements', () => {
  test('a changed named element is patched field by field, not removed and re-added', () => {
    const env = Array.from({ length: 2000 }, (_, i) => ({ name: `V${i}`, value: String(i) }));
    const app = { name: 'app', image: 'app:1', env, readinessProbe: { httpGet: { port: 8080 } } };
    const rewritten = {
      ...app,
      readinessProbe: { httpGet: { port: 15020, path: '/app-health/app/readyz' } },
    };
    const proxy = { name: 'istio-proxy', image: 'proxyv2' };
    const ops = arrayEditOps('/spec/containers', [app], [rewritten, proxy]);
    expect(ops).toEqual([
      { op: 'add', path: '/spec/containers/1', value: proxy },
      { op: 'replace', path: '/spec/containers/0/readinessProbe', value: rewritten.readinessProbe },
    ]);
    expect(JSON.stringify(ops).length).toBeLessThan(500);
    expect(applyJsonPatch({ spec: { containers: [app] } }, ops)).toEqual({
      spec: { containers: [rewritten, proxy] },
    });
  });

  test('fields that disappear are removed and new ones added', () => {
    const before = [{ name: 'a', x: 1, y: 2 }];
    const after = [{ name: 'a', x: 1, z: 3 }];
    const ops = arrayEditOps('/l', before, after);
    expect(applyJsonPatch({ l: before }, ops)).toEqual({ l: after });
  });

  test('an element moved before another is re-added rather than patched out of order', () => {
    const a = { name: 'a' };
    const b = { name: 'b' };
    const ops = arrayEditOps('/l', [a, b], [{ ...b, v: 1 }, a]);
    expect(applyJsonPatch({ l: [a, b] }, ops)).toEqual({ l: [{ name: 'b', v: 1 }, a] });
  });
});
