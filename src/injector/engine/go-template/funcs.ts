// The functions a template can call: Go's text/template builtins and a deterministic subset of sprig, each
// following its documented behaviour (istiod's own functions, toYaml among them, are in custom-templates.ts;
// Helm's required and fromYaml are not in istiod's function map, so not here either). Arguments arrive
// already evaluated; `and`/`or` short-circuit in exec.ts, which calls these only for their non-lazy use.
import { Document, isScalar, parse as parseYaml, Scalar, visit, type Pair } from 'yaml';
import {
  type GoMap,
  activeLimits,
  canBackquote,
  checkDepth,
  checkResultSize,
  compareStrings,
  formatValue,
  getOwn,
  goTypeName,
  isMap,
  isPrintable,
  isTrue,
  mapSize,
  quoteGo,
  sortedKeys,
  sprint,
  sprintf,
  sprintln,
} from './fmt.js';
import { FORBIDDEN_KEYS, parseNumberLiteral } from './parse.js';
import { compileRe2, quoteMeta, Re2SyntaxError, type Re2, type StepMeter } from './re2.js';

export type TemplateFunction = (...args: unknown[]) => unknown;
export type FuncMap = Readonly<Record<string, TemplateFunction>>;

/** A wrong argument count for a builtin; Go reports it without the "error calling" prefix. */
export class ArityError extends Error {}

function want(name: string, args: readonly unknown[], count: number): void {
  if (args.length !== count)
    throw new ArityError(`wrong number of args for ${name}: want ${count} got ${args.length}`);
}

function wantAtLeast(name: string, args: readonly unknown[], count: number): void {
  if (args.length < count) {
    throw new ArityError(`wrong number of args for ${name}: want at least ${count} got ${args.length}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Builtins

/** An integer index within [0, cap] (Go's indexArg). */
function indexArg(index: unknown, cap: number, what: string): number {
  if (index === undefined || index === null) throw new Error(`cannot index ${what} with nil`);
  if (typeof index !== 'number' || !Number.isInteger(index)) {
    throw new Error(`cannot index ${what} with type ${goTypeName(index)}`);
  }
  if (index < 0 || index > cap) throw new Error(`index out of range: ${index}`);
  return index;
}

function index(...args: unknown[]): unknown {
  wantAtLeast('index', args, 1);
  let item = args[0];
  for (const key of args.slice(1)) {
    // A missing value is a typed zero map or slice: indexing it yields another zero value.
    if (item === undefined || item === null) return undefined;
    if (Array.isArray(item)) {
      const i = indexArg(key, item.length, 'slice/array');
      if (i === item.length) throw new Error(`index out of range: ${i}`);
      item = item[i];
    } else if (typeof item === 'string') {
      // A Go string is its UTF-8 bytes, and indexing it gives one of them.
      const bytes = Buffer.from(item, 'utf8');
      const i = indexArg(key, bytes.length, 'string');
      if (i === bytes.length) throw new Error(`index out of range: ${i}`);
      item = bytes[i];
    } else if (isMap(item)) {
      // A missing key is the zero string.
      if (key !== undefined && typeof key !== 'string') {
        throw new Error(`value has type ${goTypeName(key)}; should be string`);
      }
      item = getOwn(item, key ?? '');
    } else {
      throw new Error(`can't index item of type ${goTypeName(item)}`);
    }
  }
  return item;
}

function length(...args: unknown[]): number {
  want('len', args, 1);
  const [item] = args;
  if (item === undefined || item === null) return 0;
  if (typeof item === 'string') return Buffer.byteLength(item, 'utf8');
  if (Array.isArray(item)) return item.length;
  if (isMap(item)) return mapSize(item);
  throw new Error(`len of type ${goTypeName(item)}`);
}

type Kind = 'bool' | 'number' | 'string' | 'nil' | 'other';

function basicKind(value: unknown): Kind {
  switch (typeof value) {
    case 'boolean':
      return 'bool';
    case 'number':
      return 'number';
    case 'string':
      return 'string';
    case 'undefined':
      return 'nil';
    default:
      return value === null ? 'nil' : 'other';
  }
}

/** A missing value compared with a basic value is that type's zero value (a typed zero field). */
function zeroLike(missing: unknown, other: unknown): unknown {
  if (missing !== undefined) return missing;
  switch (typeof other) {
    case 'boolean':
      return false;
    case 'number':
      return 0;
    case 'string':
      return '';
    default:
      return undefined;
  }
}

function eq(...args: unknown[]): boolean {
  wantAtLeast('eq', args, 1);
  const [first, ...rest] = args;
  if (rest.length === 0) throw new Error('missing argument for comparison');
  for (const other of rest) {
    const a = zeroLike(first, other);
    const b = zeroLike(other, a);
    const [ka, kb] = [basicKind(a), basicKind(b)];
    if (ka !== kb) {
      if (ka === 'nil' || kb === 'nil') continue;
      throw new Error('incompatible types for comparison');
    }
    if (ka === 'other') throw new Error(`non-comparable type ${goTypeName(a)}`);
    if (ka === 'nil' || a === b) return true;
  }
  return false;
}

function ne(...args: unknown[]): boolean {
  want('ne', args, 2);
  return !eq(args[0], args[1]);
}

function lessThan(name: string, args: readonly unknown[]): boolean {
  want(name, args, 2);
  const a = zeroLike(args[0], args[1]);
  const b = zeroLike(args[1], a);
  const [ka, kb] = [basicKind(a), basicKind(b)];
  if (ka !== 'number' && ka !== 'string') throw new Error('invalid type for comparison');
  if (ka !== kb) throw new Error('incompatible types for comparison');
  return (a as number | string) < (b as number | string);
}

const lt = (...args: unknown[]): boolean => lessThan('lt', args);
const le = (...args: unknown[]): boolean => lessThan('le', args) || eq(args[0], args[1]);
const gt = (...args: unknown[]): boolean => !(lessThan('gt', args) || eq(args[0], args[1]));
const ge = (...args: unknown[]): boolean => !lessThan('ge', args);

/** The text html, js and urlquery escape: their arguments printed as Sprint does, with nil as <no value>. */
function argsText(args: readonly unknown[]): string {
  if (args.length === 1 && typeof args[0] === 'string') return args[0];
  return sprint(args.map((arg) => (arg === null ? '<no value>' : arg)));
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '"': '&#34;',
  "'": '&#39;',
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '\0': '\ufffd',
};

function html(...args: unknown[]): string {
  return argsText(args).replace(/["'&<>\0]/g, (c) => HTML_ESCAPES[c] ?? c);
}

function js(...args: unknown[]): string {
  let out = '';
  for (const ch of argsText(args)) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '\\' || ch === "'" || ch === '"') out += `\\${ch}`;
    else if (
      ch === '<' ||
      ch === '>' ||
      ch === '&' ||
      ch === '=' ||
      code < 0x20 ||
      (code >= 0x80 && !isPrintable(ch, code))
    ) {
      out += `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
    } else out += ch;
  }
  return out;
}

/** url.QueryEscape: unreserved bytes kept, space as '+', everything else %XX. */
function urlquery(...args: unknown[]): string {
  let out = '';
  for (const byte of Buffer.from(argsText(args), 'utf8')) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-_.~]/.test(c)) out += c;
    else if (c === ' ') out += '+';
    else out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function printf(...args: unknown[]): string {
  wantAtLeast('printf', args, 1);
  const [format, ...rest] = args;
  return sprintf(stringArg(format), rest);
}

function call(...args: unknown[]): unknown {
  wantAtLeast('call', args, 1);
  const [fn, ...rest] = args;
  if (typeof fn !== 'function') throw new Error(`non-function of type ${goTypeName(fn)}`);
  return (fn as TemplateFunction)(...rest);
}

/** Go's builtins. `and` and `or` are listed for name checks; exec.ts evaluates them lazily. */
export const BUILTIN_FUNCS: FuncMap = Object.freeze({
  and: (...args: unknown[]) => {
    wantAtLeast('and', args, 1);
    return args.find((arg) => !isTrue(arg)) ?? args[args.length - 1];
  },
  or: (...args: unknown[]) => {
    wantAtLeast('or', args, 1);
    return args.find((arg) => isTrue(arg)) ?? args[args.length - 1];
  },
  not: (...args: unknown[]) => {
    want('not', args, 1);
    return !isTrue(args[0]);
  },
  len: length,
  index,
  print: (...args: unknown[]) => sprint(args),
  printf,
  println: (...args: unknown[]) => sprintln(args),
  html,
  js,
  urlquery,
  eq,
  ne,
  lt,
  le,
  gt,
  ge,
  call,
});

/**
 * A nil slice, as sprig returns from some list functions when nothing is left (rest, initial, concat, regexFindAll
 * without a match): it prints as [] and has no elements, like an empty list, but encoding/json writes it as null.
 * Known by identity; frozen so that no function can add to it.
 */
export const NIL_LIST: readonly unknown[] = Object.freeze([]);

// ---------------------------------------------------------------------------------------------------------
// Argument conversion (what Go does when a value meets a typed parameter)

function stringArg(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value === undefined) return '';
  throw new Error(`wrong type for value; expected string; got ${goTypeName(value)}`);
}

function intArg(value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (value === undefined) return 0;
  throw new Error(`wrong type for value; expected int; got ${goTypeName(value)}`);
}

function mapArg(value: unknown): GoMap {
  if (isMap(value)) return value;
  throw new Error(`wrong type for value; expected map[string]interface {}; got ${goTypeName(value)}`);
}

/** A list argument; a missing value is an empty (typed nil) slice. */
function listArg(value: unknown, operation: string): readonly unknown[] {
  if (Array.isArray(value)) return value;
  if (value === undefined || value === null) return [];
  throw new Error(`Cannot ${operation} on type ${goTypeName(value)}`);
}

/** sprig's strval: strings as is, everything else as %v. */
function strval(value: unknown): string {
  return typeof value === 'string' ? value : formatValue(value);
}

/** sprig's strslice: the non-nil elements of a list as strings; a scalar becomes a one-element list. */
function strslice(value: unknown): string[] {
  if (Array.isArray(value)) {
    return value.filter((element) => element !== null && element !== undefined).map(strval);
  }
  return value === null || value === undefined ? [] : [strval(value)];
}

/** Stores `value` under `key`; a missing value is stored as nil, so the key is there, as in Go's map. */
function setKey(map: GoMap, key: string, value: unknown): void {
  if (FORBIDDEN_KEYS.has(key)) throw new Error(`key ${quoteGo(key)} is not allowed`);
  map[key] = value === undefined ? null : value;
}

const INT_SHAPE =
  /^[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)$/;

/** spf13/cast's ToInt64 as sprig uses it: errors become 0. */
function toInt64(value: unknown): number {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? Math.trunc(value) : 0;
    case 'boolean':
      return value ? 1 : 0;
    case 'string': {
      // cast drops a zero fraction ("3.0") and parses the rest as Go's base-prefixed integer syntax.
      const text = /^[^.]*\.0*$/.test(value) ? value.replace(/\.0*$/, '') : value;
      return INT_SHAPE.test(text) ? (parseNumberLiteral(text) ?? 0) : 0;
    }
    default:
      return 0;
  }
}

function toFloat64(value: unknown): number {
  switch (typeof value) {
    case 'number':
      return value;
    case 'boolean':
      return value ? 1 : 0;
    case 'string': {
      const special = /^([+-]?)(inf|infinity|nan)$/i.exec(value);
      if (special)
        return special[2]?.toLowerCase() === 'nan' ? NaN : special[1] === '-' ? -Infinity : Infinity;
      return parseNumberLiteral(value) ?? 0;
    }
    default:
      return 0;
  }
}

function deepEqual(a: unknown, b: unknown, depth = 0): boolean {
  if (a === b) return true;
  if ((a === null || a === undefined) && (b === null || b === undefined)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  checkDepth(depth);
  if (Array.isArray(a) || Array.isArray(b)) {
    return (
      Array.isArray(a) &&
      Array.isArray(b) &&
      a.length === b.length &&
      a.every((element, i) => deepEqual(element, b[i], depth + 1))
    );
  }
  const [ka, kb] = [sortedKeys(a as GoMap), sortedKeys(b as GoMap)];
  return (
    ka.length === kb.length &&
    ka.every((key, i) => key === kb[i] && deepEqual((a as GoMap)[key], (b as GoMap)[key], depth + 1))
  );
}

function deepCopy(value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null) return value;
  checkDepth(depth);
  if (Array.isArray(value)) return value.map((element) => deepCopy(element, depth + 1));
  const copy: GoMap = {};
  for (const key of sortedKeys(value as GoMap)) copy[key] = deepCopy((value as GoMap)[key], depth + 1);
  return copy;
}

/** mergo's map merge as sprig uses it: nested maps merge; otherwise dst keeps non-empty values unless `overwrite`. */
function deepMerge(dst: GoMap, src: GoMap, overwrite: boolean, depth: number): void {
  checkDepth(depth);
  for (const key of sortedKeys(src)) {
    const value = src[key];
    const existing = getOwn(dst, key);
    // A nil value is never merged in, but it overwrites (as mergo does for sprig's mergeOverwrite).
    if (value === null) {
      if (overwrite) setKey(dst, key, null);
      continue;
    }
    if (isMap(value) && isMap(existing)) {
      deepMerge(existing, value, overwrite, depth + 1);
    } else if (overwrite || existing === undefined || !isTrue(existing)) {
      setKey(dst, key, value);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Strings

const GO_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const TRIM_SPACE = new RegExp(`^[${GO_SPACE}]+|[${GO_SPACE}]+$`, 'g');

function trimCutset(s: string, cutset: string, left: boolean, right: boolean): string {
  const chars = new Set(cutset);
  const runes = [...s];
  let start = 0;
  let end = runes.length;
  while (left && start < end && chars.has(runes[start] ?? '')) start++;
  while (right && end > start && chars.has(runes[end - 1] ?? '')) end--;
  return runes.slice(start, end).join('');
}

/** strings.Title: upper-cases the first letter of each word (words split at non-letters). */
function title(s: string): string {
  let out = '';
  let previousIsSeparator = true;
  for (const ch of s) {
    out += previousIsSeparator ? ch.toUpperCase() : ch;
    previousIsSeparator = !/[\p{L}\p{N}_]/u.test(ch) && (ch.charCodeAt(0) < 0x80 || /\s/u.test(ch));
  }
  return out;
}

function repeatString(count: number, s: string): string {
  if (count < 0) throw new Error('strings: negative Repeat count');
  checkResultSize(count * s.length);
  return s.repeat(count);
}

function indent(spaces: number, s: string): string {
  const pad = repeatString(spaces, ' ');
  const lines = s.split('\n').length;
  checkResultSize(s.length + lines * spaces);
  return pad + s.replaceAll('\n', `\n${pad}`);
}

// sprig's substr and trunc slice a Go string, that is its UTF-8 bytes. A cut inside a character leaves Go a partial
// sequence; a JavaScript string cannot hold one, so it becomes U+FFFD.

/** Go's s[low:high] on the UTF-8 bytes of `s`, which panics outside 0 ≤ low ≤ high ≤ len(s). */
function sliceBytes(bytes: Buffer, low: number, high: number): string {
  if (low < 0 || high < low || high > bytes.length) {
    throw new Error(`runtime error: slice bounds out of range [${low}:${high}] with length ${bytes.length}`);
  }
  return bytes.subarray(low, high).toString('utf8');
}

function substr(start: number, end: number, s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  if (start < 0) return sliceBytes(bytes, 0, end);
  if (end < 0 || end > bytes.length) return sliceBytes(bytes, start, bytes.length);
  return sliceBytes(bytes, start, end);
}

function trunc(count: number, s: string): string {
  const bytes = Buffer.from(s, 'utf8');
  if (count < 0 && bytes.length + count > 0) return sliceBytes(bytes, bytes.length + count, bytes.length);
  if (count >= 0 && bytes.length > count) return sliceBytes(bytes, 0, count);
  return s;
}

function splitString(sep: string, s: string): string[] {
  return sep === '' ? [...s] : s.split(sep);
}

// ---------------------------------------------------------------------------------------------------------
// JSON and YAML

/** Go's encoding/json: sorted map keys, HTML-safe escaping unless `raw`, errors on NaN, Inf and functions. */
export function toGoJson(value: unknown, raw: boolean, indentUnit = '', depth = 0, prefix = ''): string {
  switch (typeof value) {
    case 'undefined':
      return 'null';
    case 'boolean':
      return String(value);
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`json: unsupported value: ${formatValue(value)}`);
      return String(value);
    case 'bigint':
      return String(value);
    case 'string': {
      let text = JSON.stringify(value).replace(/[\u2028\u2029]/g, (c) =>
        c === '\u2028' ? '\\u2028' : '\\u2029',
      );
      if (!raw) text = text.replace(/[<>&]/g, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
      return text;
    }
    case 'function':
      throw new Error(`json: unsupported type: ${goTypeName(value)}`);
  }
  if (value === null || value === NIL_LIST) return 'null';
  checkDepth(depth);
  const inner = prefix + indentUnit;
  const [open, sep, close] = indentUnit ? [`\n${inner}`, `,\n${inner}`, `\n${prefix}`] : ['', ',', ''];
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    const items = value.map((element) => toGoJson(element, raw, indentUnit, depth + 1, inner));
    return `[${open}${items.join(sep)}${close}]`;
  }
  const map = value as GoMap;
  const keys = sortedKeys(map);
  if (keys.length === 0) return '{}';
  const colon = indentUnit ? ': ' : ':';
  const items = keys.map(
    (key) => `${toGoJson(key, raw)}${colon}${toGoJson(map[key], raw, indentUnit, depth + 1, inner)}`,
  );
  return `{${open}${items.join(sep)}${close}}`;
}

/** A plain copy for the YAML writer: no undefined values, no forbidden keys, no shared references. */
function yamlReady(value: unknown, depth: number): unknown {
  if (typeof value === 'function') throw new Error(`yaml: cannot marshal type ${goTypeName(value)}`);
  if (value === NIL_LIST) return null;
  if (typeof value !== 'object' || value === null) return value ?? null;
  checkDepth(depth);
  if (Array.isArray(value)) return value.map((element) => yamlReady(element, depth + 1));
  const copy: GoMap = {};
  for (const key of sortedKeys(value as GoMap)) copy[key] = yamlReady((value as GoMap)[key], depth + 1);
  return copy;
}

const pairKey = (pair: Pair): string => String(isScalar(pair.key) ? pair.key.value : pair.key);

/**
 * YAML as go-yaml writes a value encoded through encoding/json (sigs.k8s.io/yaml's Marshal, which istiod's toYaml
 * calls): sorted keys, sequences not indented under their key, a final newline, and go-yaml's choice of quotes,
 * which `make differential` compares with it: double quotes for a string YAML 1.1 would read as something else
 * ("yes", "1.5", "") or holding characters go-yaml does not print as they are (a tab), single quotes where a plain
 * scalar would not read back, a literal block for several lines. "" when the value cannot be encoded, as istiod's
 * toYaml answers then.
 */
export function goYaml(value: unknown): string {
  try {
    const doc = new Document(yamlReady(value, 0), {
      version: '1.1',
      aliasDuplicateObjects: false,
      sortMapEntries: (a, b) => compareStrings(pairKey(a), pairKey(b)),
    });
    visit(doc, {
      Scalar(_key, node) {
        if (typeof node.value === 'string' && needsDoubleQuotes(node.value)) node.type = Scalar.QUOTE_DOUBLE;
      },
    });
    const text =
      doc.contents instanceof Scalar &&
      doc.contents.type !== Scalar.QUOTE_DOUBLE &&
      typeof value === 'string' &&
      value.includes('\n')
        ? topLevelLiteral(value)
        : doc.toString({ indentSeq: false, lineWidth: 0, singleQuote: true });
    // Characters beyond the Basic Multilingual Plane are written as \U escapes, in the double quotes
    // needsDoubleQuotes asked for.
    return text.replace(
      /[\u{10000}-\u{10ffff}]/gu,
      (c) => `\\U${c.codePointAt(0)!.toString(16).toUpperCase().padStart(8, '0')}`,
    );
  } catch {
    return '';
  }
}

/** A string of several lines on its own, as go-yaml writes it: a literal block indented by two spaces. */
function topLevelLiteral(s: string): string {
  const trailing = /\n*$/.exec(s)![0].length;
  const chomp = trailing === 0 ? '-' : trailing === 1 ? '' : '+';
  const indicator = s.startsWith(' ') || s.startsWith('\n') ? '2' : '';
  const body = (trailing === 0 ? s : s.slice(0, -1))
    .split('\n')
    .map((line) => (line === '' ? '' : `  ${line}`));
  return `|${indicator}${chomp}\n${body.join('\n')}\n`;
}

// libyaml's printable characters: a tab, other controls, DEL and characters beyond the Basic Multilingual Plane
// are not, so a string holding one is written in double quotes with escapes.
const NOT_PRINTABLE_IN_YAML =
  // eslint-disable-next-line no-control-regex -- control characters are what this finds
  /[\u0000-\u0009\u000b-\u001f\u007f-\u0084\u0086-\u009f\ufeff\ufffe\uffff\u{10000}-\u{10ffff}]/u;

function needsDoubleQuotes(s: string): boolean {
  if (s === '' || NOT_PRINTABLE_IN_YAML.test(s)) return true;
  // Several lines go in a literal block, unless a line ends in a space (which a block would lose).
  if (s.includes('\n')) return / \n| $/.test(s);
  // One line: quoted twice over when YAML 1.1 would read it as a bool, number, null or date.
  if (s.trim() !== s) return false;
  try {
    const read: unknown = parseYaml(s, { version: '1.1' });
    return typeof read !== 'string' && (read === null || typeof read !== 'object' || read instanceof Date);
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------------
// base64

function b64dec(s: unknown): string {
  const text = stringArg(s).replace(/[\r\n]/g, '');
  const bad = /[^A-Za-z0-9+/=]/.exec(text);
  const wellFormed = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text);
  if (bad || !wellFormed) {
    // Like sprig, a decoding error is returned as the result text.
    const at = bad ? bad.index : Math.max(text.indexOf('='), 0) || text.length - (text.length % 4);
    return `illegal base64 data at input byte ${at}`;
  }
  return Buffer.from(text, 'base64').toString('utf8');
}

// ---------------------------------------------------------------------------------------------------------
// Regular expressions (sprig's regex functions over Go's regexp, here re2.ts)

// Compiled patterns by source. Patterns are mostly literals in a template, so the same few recur on every
// render; a computed one can come from a pod, so the cache is cleared when full rather than growing, and long
// patterns are not kept.
const compiledPatterns = new Map<string, Re2 | Re2SyntaxError>();
const COMPILED_PATTERNS_KEPT = 256;
const LONGEST_PATTERN_KEPT = 4096;

/** Go's regexp.Compile; its error is what sprig's must* functions return. Compiling counts against the step limit. */
function compilePattern(value: unknown): Re2 {
  const pattern = stringArg(value);
  let compiled = compiledPatterns.get(pattern);
  if (compiled === undefined) {
    activeLimits.meter?.charge(pattern.length);
    try {
      compiled = compileRe2(pattern);
    } catch (error) {
      if (!(error instanceof Re2SyntaxError)) throw error;
      compiled = error;
    }
    if (pattern.length <= LONGEST_PATTERN_KEPT) {
      if (compiledPatterns.size >= COMPILED_PATTERNS_KEPT) compiledPatterns.clear();
      compiledPatterns.set(pattern, compiled);
    }
  }
  if (compiled instanceof Re2SyntaxError) throw compiled;
  return compiled;
}

/** Go's regexp.MustCompile, which sprig's plain functions use: its panic becomes the call's error. */
function mustCompilePattern(value: unknown): Re2 {
  try {
    return compilePattern(value);
  } catch (error) {
    if (!(error instanceof Re2SyntaxError)) throw error;
    const pattern = stringArg(value);
    throw new Error(
      `regexp: Compile(${canBackquote(pattern) ? `\`${pattern}\`` : quoteGo(pattern)}): ${error.message}`,
    );
  }
}

/** One function and its must* twin: `compile` is MustCompile for the first and Compile for the second. */
function regexPair(
  name: string,
  apply: (re: Re2, meter: StepMeter | undefined, ...args: unknown[]) => unknown,
): FuncMap {
  const must = `must${name[0]!.toUpperCase()}${name.slice(1)}`;
  return {
    [name]: (regex: unknown, ...args: unknown[]) =>
      apply(mustCompilePattern(regex), activeLimits.meter, ...args),
    [must]: (regex: unknown, ...args: unknown[]) => apply(compilePattern(regex), activeLimits.meter, ...args),
  };
}

const REGEX_FUNCS: FuncMap = {
  // regexMatch is regexp.MatchString with its error dropped: a pattern that does not compile matches nothing.
  regexMatch: (regex: unknown, s: unknown) => {
    let re: Re2;
    try {
      re = compilePattern(regex);
    } catch (error) {
      if (error instanceof Re2SyntaxError) return false;
      throw error;
    }
    return re.matchString(stringArg(s), activeLimits.meter);
  },
  mustRegexMatch: (regex: unknown, s: unknown) =>
    compilePattern(regex).matchString(stringArg(s), activeLimits.meter),
  ...regexPair('regexFind', (re, meter, s) => re.findString(stringArg(s), meter)),
  ...regexPair(
    'regexFindAll',
    (re, meter, s, n) => re.findAllString(stringArg(s), intArg(n), meter) ?? NIL_LIST,
  ),
  ...regexPair('regexReplaceAll', (re, meter, s, repl) =>
    re.replaceAllString(stringArg(s), stringArg(repl), meter),
  ),
  ...regexPair('regexReplaceAllLiteral', (re, meter, s, repl) =>
    re.replaceAllLiteralString(stringArg(s), stringArg(repl), meter),
  ),
  ...regexPair('regexSplit', (re, meter, s, n) => re.split(stringArg(s), intArg(n), meter) ?? NIL_LIST),
  regexQuoteMeta: (s: unknown) => quoteMeta(stringArg(s)),
};

// ---------------------------------------------------------------------------------------------------------
// sprig

function kindOf(value: unknown): string {
  if (value === undefined || value === null) return 'invalid';
  if (Array.isArray(value)) return 'slice';
  if (isMap(value)) return 'map';
  if (typeof value === 'function') return 'func';
  return goTypeName(value);
}

function failure(message: string): Error {
  return new Error(message);
}

/** sprig's toJson family: what encoding/json gives, or "" for a value it cannot encode. */
function jsonOrEmpty(value: unknown, raw: boolean, indentUnit = ''): string {
  try {
    return toGoJson(value, raw, indentUnit);
  } catch {
    return '';
  }
}

/**
 * The sprig functions meshrev provides, with sprig's argument order (`contains substr str`, `join sep list`)
 * and its documented results. Functions reading the clock, randomness or the environment are left out so
 * that rendering stays deterministic.
 */
export const SPRIG_FUNCS: FuncMap = Object.freeze({
  // defaults and flow
  default: (fallback: unknown, ...given: unknown[]) =>
    given.length > 0 && isTrue(given[0]) ? given[0] : fallback,
  empty: (value: unknown) => !isTrue(value),
  // Go's nil when nothing is set (null here: printed <nil> by print, refused where a string is wanted).
  coalesce: (...values: unknown[]) => values.find((value) => isTrue(value)) ?? null,
  ternary: (whenTrue: unknown, whenFalse: unknown, condition: unknown) => {
    if (condition !== undefined && typeof condition !== 'boolean') {
      throw failure(`wrong type for value; expected bool; got ${goTypeName(condition)}`);
    }
    return condition ? whenTrue : whenFalse;
  },
  fail: (message: unknown) => {
    throw failure(stringArg(message));
  },

  // strings
  quote: (...values: unknown[]) =>
    values
      .filter((value) => value !== null && value !== undefined)
      .map((value) => quoteGo(strval(value)))
      .join(' '),
  squote: (...values: unknown[]) =>
    values
      .filter((value) => value !== null && value !== undefined)
      .map((value) => `'${strval(value)}'`)
      .join(' '),
  cat: (...values: unknown[]) =>
    values
      .filter((value) => value !== null && value !== undefined)
      .map(strval)
      .join(' '),
  upper: (s: unknown) => stringArg(s).toUpperCase(),
  lower: (s: unknown) => stringArg(s).toLowerCase(),
  title: (s: unknown) => title(stringArg(s)),
  trim: (s: unknown) => stringArg(s).replace(TRIM_SPACE, ''),
  trimAll: (cutset: unknown, s: unknown) => trimCutset(stringArg(s), stringArg(cutset), true, true),
  trimPrefix: (prefix: unknown, s: unknown) => {
    const [p, text] = [stringArg(prefix), stringArg(s)];
    return p !== '' && text.startsWith(p) ? text.slice(p.length) : text;
  },
  trimSuffix: (suffix: unknown, s: unknown) => {
    const [p, text] = [stringArg(suffix), stringArg(s)];
    return p !== '' && text.endsWith(p) ? text.slice(0, text.length - p.length) : text;
  },
  contains: (substr: unknown, s: unknown) => stringArg(s).includes(stringArg(substr)),
  hasPrefix: (prefix: unknown, s: unknown) => stringArg(s).startsWith(stringArg(prefix)),
  hasSuffix: (suffix: unknown, s: unknown) => stringArg(s).endsWith(stringArg(suffix)),
  replace: (old: unknown, replacement: unknown, s: unknown) => {
    const [from, to, text] = [stringArg(old), stringArg(replacement), stringArg(s)];
    // Like strings.Replace, an empty `old` matches before every rune and at the end.
    const result = from === '' ? to + [...text].map((rune) => rune + to).join('') : text.split(from).join(to);
    checkResultSize(result.length);
    return result;
  },
  repeat: (count: unknown, s: unknown) => repeatString(intArg(count), stringArg(s)),
  substr: (start: unknown, end: unknown, s: unknown) => substr(intArg(start), intArg(end), stringArg(s)),
  trunc: (count: unknown, s: unknown) => trunc(intArg(count), stringArg(s)),
  indent: (spaces: unknown, s: unknown) => indent(intArg(spaces), stringArg(s)),
  nindent: (spaces: unknown, s: unknown) => `\n${indent(intArg(spaces), stringArg(s))}`,
  split: (sep: unknown, s: unknown) => {
    const parts: GoMap = {};
    splitString(stringArg(sep), stringArg(s)).forEach((part, i) => (parts[`_${i}`] = part));
    return parts;
  },
  splitList: (sep: unknown, s: unknown) => splitString(stringArg(sep), stringArg(s)),
  join: (sep: unknown, list: unknown) => strslice(list).join(stringArg(sep)),
  toString: (value: unknown) => strval(value),
  toStrings: (value: unknown) => strslice(value),

  // lists
  list: (...values: unknown[]) => values,
  // sprig's slice shadows Go's builtin in istiod's function map: lists only (a string is an error), and an empty
  // list gives nil.
  slice: (list: unknown, ...indexes: unknown[]) => {
    if (!Array.isArray(list)) throw new Error(`list should be type of slice or array but ${kindOf(list)}`);
    if (list.length === 0) return null;
    const start = indexes.length > 0 ? toInt64(indexes[0]) : 0;
    const end = indexes.length > 1 ? toInt64(indexes[1]) : list.length;
    if (start < 0 || end < start || end > list.length)
      throw new Error('reflect.Value.Slice: slice index out of bounds');
    return list.slice(start, end);
  },
  // first and last of an empty list are Go's nil; rest and initial of one are a nil slice.
  first: (list: unknown) => listArg(list, 'find first')[0] ?? null,
  last: (list: unknown) => listArg(list, 'find last').at(-1) ?? null,
  rest: (list: unknown) => {
    const l = listArg(list, 'find rest');
    return l.length === 0 ? NIL_LIST : l.slice(1);
  },
  initial: (list: unknown) => {
    const l = listArg(list, 'find initial');
    return l.length === 0 ? NIL_LIST : l.slice(0, -1);
  },
  append: (list: unknown, value: unknown) => [...listArg(list, 'push'), value],
  prepend: (list: unknown, value: unknown) => [value, ...listArg(list, 'prepend')],
  // concat appends to a nil slice, so nothing to append leaves it nil.
  concat: (...lists: unknown[]) => {
    const joined = lists.flatMap((list) => [...listArg(list, 'concat')]);
    return joined.length === 0 ? NIL_LIST : joined;
  },
  uniq: (list: unknown) =>
    listArg(list, 'uniq').filter((value, i, all) => all.findIndex((other) => deepEqual(other, value)) === i),
  has: (needle: unknown, list: unknown) =>
    listArg(list, 'find has').some((value) => deepEqual(value, needle)),
  without: (list: unknown, ...omit: unknown[]) =>
    listArg(list, 'find without').filter((value) => !omit.some((o) => deepEqual(o, value))),
  compact: (list: unknown) => listArg(list, 'compact').filter((value) => isTrue(value)),
  // Anything but a list becomes a list of its one printed value (nil as <nil>; a missing value is a typed zero).
  sortAlpha: (list: unknown) =>
    Array.isArray(list)
      ? strslice(list).sort(compareStrings)
      : [list === null ? '<nil>' : strval(list ?? '')],

  // dictionaries
  dict: (...pairs: unknown[]) => {
    const map: GoMap = {};
    for (let i = 0; i < pairs.length; i += 2)
      setKey(map, strval(pairs[i]), i + 1 < pairs.length ? pairs[i + 1] : '');
    return map;
  },
  get: (map: unknown, key: unknown) => {
    const value = getOwn(mapArg(map), stringArg(key));
    return value === undefined ? '' : value;
  },
  set: (map: unknown, key: unknown, value: unknown) => {
    const target = mapArg(map);
    setKey(target, stringArg(key), value);
    return target;
  },
  unset: (map: unknown, key: unknown) => {
    const target = mapArg(map);
    const k = stringArg(key);
    if (!FORBIDDEN_KEYS.has(k)) delete target[k];
    return target;
  },
  hasKey: (map: unknown, key: unknown) => getOwn(mapArg(map), stringArg(key)) !== undefined,
  keys: (...maps: unknown[]) => maps.flatMap((map) => sortedKeys(mapArg(map))).sort(compareStrings),
  values: (map: unknown) => {
    const m = mapArg(map);
    return sortedKeys(m).map((key) => m[key]);
  },
  pluck: (key: unknown, ...maps: unknown[]) => {
    const k = stringArg(key);
    return maps.map((map) => getOwn(mapArg(map), k)).filter((value) => value !== undefined);
  },
  merge: (dst: unknown, ...srcs: unknown[]) => {
    const target = mapArg(dst);
    for (const src of srcs) if (src !== undefined && src !== null) deepMerge(target, mapArg(src), false, 0);
    return target;
  },
  mergeOverwrite: (dst: unknown, ...srcs: unknown[]) => {
    const target = mapArg(dst);
    for (const src of srcs) if (src !== undefined && src !== null) deepMerge(target, mapArg(src), true, 0);
    return target;
  },
  deepCopy: (value: unknown) => deepCopy(value),

  // numbers
  atoi: (s: unknown) => {
    const text = stringArg(s);
    return /^[+-]?\d+$/.test(text) ? Number(text) : 0;
  },
  int: toInt64,
  int64: toInt64,
  float64: toFloat64,
  add: (...values: unknown[]) => values.reduce<number>((sum, value) => sum + toInt64(value), 0),
  add1: (value: unknown) => toInt64(value) + 1,
  sub: (a: unknown, b: unknown) => toInt64(a) - toInt64(b),
  // Go's integers have no negative zero; JavaScript's 0 * -3, -1 / 2 and -3 % 3 do (and YAML would print it).
  mul: (first: unknown, ...values: unknown[]) =>
    values.reduce<number>((product, value) => product * toInt64(value), toInt64(first)) + 0,
  div: (a: unknown, b: unknown) => {
    const divisor = toInt64(b);
    if (divisor === 0) throw failure('runtime error: integer divide by zero');
    return Math.trunc(toInt64(a) / divisor) + 0;
  },
  mod: (a: unknown, b: unknown) => {
    const divisor = toInt64(b);
    if (divisor === 0) throw failure('runtime error: integer divide by zero');
    return (toInt64(a) % divisor) + 0;
  },
  max: (first: unknown, ...values: unknown[]) => Math.max(toInt64(first), ...values.map(toInt64)),
  min: (first: unknown, ...values: unknown[]) => Math.min(toInt64(first), ...values.map(toInt64)),

  // encodings
  b64enc: (s: unknown) => Buffer.from(stringArg(s), 'utf8').toString('base64'),
  b64dec,
  toJson: (value: unknown) => jsonOrEmpty(value, false),
  toPrettyJson: (value: unknown) => jsonOrEmpty(value, false, '  '),
  toRawJson: (value: unknown) => jsonOrEmpty(value, true),
  // sprig's fromJson yields nil on invalid input (documented as "an empty string"); mustFromJson fails.
  fromJson: (s: unknown) => {
    try {
      return JSON.parse(stringArg(s)) as unknown;
    } catch {
      return undefined;
    }
  },
  mustFromJson: (s: unknown) => JSON.parse(stringArg(s)) as unknown,

  // types
  typeOf: (value: unknown) => goTypeName(value),
  kindOf,
  kindIs: (kind: unknown, value: unknown) => kindOf(value) === stringArg(kind),

  ...REGEX_FUNCS,
});
