// Values as Go templates see them, and the subset of Go's fmt package the builtins need: %v printing of
// JSON-shaped data (maps as `map[k:v]` with sorted keys, slices as `[a b]`), Sprint/Sprintln/Sprintf with
// flags, width, precision and explicit argument indexes, strconv.Quote, and float formatting with Go's
// exact rounding (round half to even on the exact binary value).
import { FORBIDDEN_KEYS } from './parse.js';
import type { StepMeter } from './re2.js';

export type GoMap = Record<string, unknown>;

/** Nesting depth beyond which printing and copying stop (guards against cyclic values built with `set`). */
export const MAX_VALUE_DEPTH = 100;

/**
 * The execution in progress, as functions whose work can outgrow one step see it: its output limit for those
 * that can build large strings (repeat, indent, printf widths), and its step meter for the regular-expression
 * functions, whose searches count against the template's step limit. Execution is synchronous, so one
 * module-level slot is enough.
 */
export const activeLimits: { maxOutputBytes: number; meter: StepMeter | undefined } = {
  maxOutputBytes: 1024 * 1024,
  meter: undefined,
};

export function checkResultSize(length: number): void {
  if (length > activeLimits.maxOutputBytes) {
    throw new Error(
      `result of ${length} bytes exceeds the output limit of ${activeLimits.maxOutputBytes} bytes`,
    );
  }
}

export function checkDepth(depth: number): void {
  if (depth > MAX_VALUE_DEPTH) throw new Error(`value nested deeper than ${MAX_VALUE_DEPTH} levels`);
}

// ---------------------------------------------------------------------------------------------------------
// Value model

export function isMap(value: unknown): value is GoMap {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An own, non-forbidden property, else undefined (never the prototype chain). */
export function getOwn(map: GoMap, key: string): unknown {
  return !FORBIDDEN_KEYS.has(key) && Object.hasOwn(map, key) ? map[key] : undefined;
}

/** The keys of a map in Go's printing and range order (sorted); undefined-valued keys count as absent. */
export function sortedKeys(map: GoMap): string[] {
  return Object.keys(map)
    .filter((key) => map[key] !== undefined && !FORBIDDEN_KEYS.has(key))
    .sort(compareStrings);
}

export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function mapSize(map: GoMap): number {
  let size = 0;
  for (const key of Object.keys(map)) if (map[key] !== undefined && !FORBIDDEN_KEYS.has(key)) size++;
  return size;
}

/** Go's truth for if/with/and/or/not: false, 0, "", nil and empty collections are false. */
export function isTrue(value: unknown): boolean {
  switch (typeof value) {
    case 'undefined':
      return false;
    case 'boolean':
      return value;
    case 'number':
      return value !== 0;
    case 'string':
      return value.length > 0;
    case 'object':
      if (value === null) return false;
      if (Array.isArray(value)) return value.length > 0;
      for (const key of Object.keys(value)) {
        if ((value as GoMap)[key] !== undefined && !FORBIDDEN_KEYS.has(key)) return true;
      }
      return false;
    default:
      return true;
  }
}

/** Go's %T of the value as Go would hold the decoded JSON (integers as int). */
export function goTypeName(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return 'string';
    case 'number':
      return Number.isInteger(value) ? 'int' : 'float64';
    case 'bigint':
      return 'int64';
    case 'boolean':
      return 'bool';
    case 'function':
      return 'func(...interface {}) interface {}';
    case 'undefined':
      return '<nil>';
    default:
      if (value === null) return '<nil>';
      return Array.isArray(value) ? '[]interface {}' : 'map[string]interface {}';
  }
}

// ---------------------------------------------------------------------------------------------------------
// %v

/** Go's %v. A top-level undefined prints as "" (a typed zero value); nested nils print as <nil>. */
export function formatValue(value: unknown, depth = 0): string {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      return formatNumber(value);
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'undefined':
      return depth === 0 ? '' : '<nil>';
    case 'function':
      return '<func>';
    default:
      if (value === null) return '<nil>';
      checkDepth(depth);
      if (Array.isArray(value)) {
        return `[${value.map((element) => formatValue(element ?? null, depth + 1)).join(' ')}]`;
      }
      return `map[${sortedKeys(value as GoMap)
        .map((key) => `${key}:${formatValue((value as GoMap)[key] ?? null, depth + 1)}`)
        .join(' ')}]`;
  }
}

/** Integers print without a decimal point; other numbers as Go's %v prints a float64. */
export function formatNumber(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e21) return Object.is(value, -0) ? '0' : String(value);
  if (value === -Infinity) return '-Inf';
  return signed(value, formatFloat(Math.abs(value), 'g', -1, false), {});
}

// ---------------------------------------------------------------------------------------------------------
// Floats

interface Decimal {
  /** Significant digits without leading or trailing zeros ('' for zero). */
  digits: string;
  /** Position of the decimal point: value = 0.digits × 10^dp. */
  dp: number;
}

/** The exact decimal expansion of a finite non-negative double. */
function exactDecimal(value: number): Decimal {
  if (value === 0) return { digits: '', dp: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, value);
  const bits = view.getBigUint64(0);
  const exponentBits = Number((bits >> 52n) & 0x7ffn);
  let mantissa = bits & ((1n << 52n) - 1n);
  let exponent: number;
  if (exponentBits === 0) {
    exponent = -1074;
  } else {
    mantissa |= 1n << 52n;
    exponent = exponentBits - 1075;
  }
  let digits: string;
  let dp: number;
  if (exponent >= 0) {
    digits = (mantissa << BigInt(exponent)).toString();
    dp = digits.length;
  } else {
    digits = (mantissa * 5n ** BigInt(-exponent)).toString();
    dp = digits.length + exponent;
  }
  return trimDecimal({ digits, dp });
}

function trimDecimal(d: Decimal): Decimal {
  let end = d.digits.length;
  while (end > 0 && d.digits[end - 1] === '0') end--;
  return end === d.digits.length ? d : { digits: d.digits.slice(0, end), dp: end === 0 ? 0 : d.dp };
}

/** Rounds to `nd` significant digits, half to even on an exact tie (strconv's decimal rounding). */
function roundDecimal(d: Decimal, nd: number): Decimal {
  if (nd < 0) return { digits: '', dp: 0 };
  if (nd >= d.digits.length) return d;
  const next = d.digits.charCodeAt(nd) - 48;
  let roundUp: boolean;
  if (next === 5 && nd + 1 === d.digits.length) {
    roundUp = nd > 0 && (d.digits.charCodeAt(nd - 1) - 48) % 2 === 1;
  } else {
    roundUp = next >= 5;
  }
  if (!roundUp) return trimDecimal({ digits: d.digits.slice(0, nd), dp: d.digits.slice(0, nd) ? d.dp : 0 });
  let i = nd - 1;
  while (i >= 0 && d.digits[i] === '9') i--;
  if (i < 0) return { digits: '1', dp: d.dp + 1 };
  return trimDecimal({
    digits: d.digits.slice(0, i) + String.fromCharCode(d.digits.charCodeAt(i) + 1),
    dp: d.dp,
  });
}

/** The shortest digits that read back as the same double (what Go's shortest formatting uses too). */
function shortestDecimal(value: number): Decimal {
  if (value === 0) return { digits: '', dp: 0 };
  const [mantissa = '', exponent = '0'] = value.toExponential().split('e');
  return trimDecimal({ digits: mantissa.replace('.', ''), dp: Number(exponent) + 1 });
}

function fmtE(d: Decimal, prec: number, expChar: string): string {
  let out = d.digits[0] ?? '0';
  if (prec > 0) out += `.${d.digits.slice(1, prec + 1).padEnd(prec, '0')}`;
  const exp = d.digits === '' ? 0 : d.dp - 1;
  const abs = Math.abs(exp);
  return `${out}${expChar}${exp < 0 ? '-' : '+'}${abs < 10 ? '0' : ''}${abs}`;
}

function fmtF(d: Decimal, prec: number): string {
  let out = d.dp > 0 ? d.digits.slice(0, d.dp).padEnd(d.dp, '0') : '0';
  if (prec > 0) {
    out += '.';
    for (let i = 0; i < prec; i++) out += d.digits[d.dp + i] ?? '0';
  }
  return out;
}

/** strconv.FormatFloat of a non-negative value for 'e', 'f' and 'g' (prec -1 = shortest). */
export function formatFloat(value: number, format: 'e' | 'f' | 'g', prec: number, upper: boolean): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return '+Inf';
  const expChar = upper ? 'E' : 'e';
  const shortest = prec < 0;
  let d: Decimal;
  if (shortest) {
    d = shortestDecimal(value);
  } else {
    const exact = exactDecimal(value);
    const nd = format === 'e' ? prec + 1 : format === 'f' ? exact.dp + prec : Math.max(prec, 1);
    d = roundDecimal(exact, nd);
  }
  const nd = d.digits.length;
  switch (format) {
    case 'e':
      return fmtE(d, shortest ? Math.max(nd - 1, 0) : prec, expChar);
    case 'f':
      return fmtF(d, shortest ? Math.max(nd - d.dp, 0) : prec);
    case 'g': {
      let p = shortest ? nd : Math.max(prec, 1);
      let eprec = p;
      if (eprec > nd && nd >= d.dp) eprec = nd;
      if (shortest) eprec = 6;
      const exp = d.dp - 1;
      if (d.digits !== '' && (exp < -4 || exp >= eprec)) {
        if (p > nd) p = nd;
        return fmtE(d, Math.max(p - 1, 0), expChar);
      }
      if (p > d.dp) p = nd;
      return fmtF(d, Math.max(p - d.dp, 0));
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// Quoting

const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;

/** unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space. */
export function isPrintable(ch: string, code: number): boolean {
  if (code >= 0x20 && code < 0x7f) return true;
  if (code < 0xa0) return false;
  return PRINTABLE.test(ch);
}

function escapeRune(ch: string, code: number, quote: string, asciiOnly: boolean): string {
  if (ch === quote || ch === '\\') return `\\${ch}`;
  if (isPrintable(ch, code) && (!asciiOnly || code < 0x80)) return ch;
  switch (ch) {
    case '\x07':
      return '\\a';
    case '\b':
      return '\\b';
    case '\f':
      return '\\f';
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    case '\t':
      return '\\t';
    case '\v':
      return '\\v';
  }
  if (code < 0x20 || code === 0x7f) return `\\x${code.toString(16).padStart(2, '0')}`;
  // A lone surrogate cannot come from valid UTF-8; Go would have decoded it as U+FFFD.
  if (code >= 0xd800 && code < 0xe000) return asciiOnly ? '\\ufffd' : '\ufffd';
  if (code < 0x10000) return `\\u${code.toString(16).padStart(4, '0')}`;
  return `\\U${code.toString(16).padStart(8, '0')}`;
}

/** strconv.Quote (and QuoteToASCII with `asciiOnly`). */
export function quoteGo(s: string, asciiOnly = false): string {
  let out = '"';
  for (const ch of s) out += escapeRune(ch, ch.codePointAt(0) ?? 0, '"', asciiOnly);
  return `${out}"`;
}

/** strconv.QuoteRune. */
export function quoteRune(code: number, asciiOnly = false): string {
  const valid = Number.isInteger(code) && code >= 0 && code <= 0x10ffff && !(code >= 0xd800 && code < 0xe000);
  const ch = String.fromCodePoint(valid ? code : 0xfffd);
  return `'${escapeRune(ch, valid ? code : 0xfffd, "'", asciiOnly)}'`;
}

const LONE_SURROGATE = /\p{Cs}/u;

/** strconv.CanBackquote: no backquote, no control character but tab, no DEL or BOM, and valid UTF-8. */
export function canBackquote(s: string): boolean {
  // A lone surrogate would not be valid UTF-8 in Go.
  if (LONE_SURROGATE.test(s)) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x60 || c === 0x7f || c === 0xfeff || (c < 0x20 && c !== 0x09)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------
// Sprint, Sprintln, Sprintf

interface Spec {
  plus?: boolean;
  minus?: boolean;
  sharp?: boolean;
  space?: boolean;
  zero?: boolean;
  width?: number;
  prec?: number;
}

const NO_SPEC: Spec = {};

/** fmt.Sprint: operands as %v, a space between two operands when neither is a string. */
export function sprint(args: readonly unknown[]): string {
  let out = '';
  let previousIsString = false;
  args.forEach((arg, i) => {
    const isString = typeof arg === 'string' || arg === undefined;
    if (i > 0 && !isString && !previousIsString) out += ' ';
    out += formatArg(arg, 'v', NO_SPEC, 0);
    previousIsString = isString;
  });
  return out;
}

/** fmt.Sprintln: operands as %v separated by spaces, then a newline. */
export function sprintln(args: readonly unknown[]): string {
  return `${args.map((arg) => formatArg(arg, 'v', NO_SPEC, 0)).join(' ')}\n`;
}

function runeCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c >= 0xdc00 || i + 1 >= s.length) n++;
  }
  return n;
}

function pad(s: string, spec: Spec): string {
  if (spec.width === undefined) return s;
  const missing = spec.width - runeCount(s);
  if (missing <= 0) return s;
  return spec.minus ? s + ' '.repeat(missing) : ' '.repeat(missing) + s;
}

/** Pads a number: zeros go between the sign (and base prefix) and the digits. */
function padNumber(sign: string, body: string, spec: Spec, zeroAllowed: boolean): string {
  if (spec.zero && zeroAllowed && !spec.minus && spec.width !== undefined) {
    const missing = spec.width - sign.length - body.length;
    if (missing > 0) return sign + '0'.repeat(missing) + body;
  }
  return pad(sign + body, spec);
}

function signed(value: number, body: string, spec: Spec): string {
  if (value < 0 || Object.is(value, -0)) return `-${body}`;
  if (spec.plus) return `+${body}`;
  if (spec.space) return ` ${body}`;
  return body;
}

function badVerb(verb: string, arg: unknown): string {
  if (arg === null || arg === undefined) return `%!${verb}(<nil>)`;
  return `%!${verb}(${goTypeName(arg)}=${formatValue(arg)})`;
}

function formatArg(arg: unknown, verb: string, spec: Spec, depth: number): string {
  // %T prints the operand's type, whatever it holds (nil as <nil>).
  if (verb === 'T') return pad(arg === null ? '<nil>' : goTypeName(arg), spec);
  // In %+v the plus asks for struct field names, which JSON values do not have; numbers get no sign from it.
  if (verb === 'v' && spec.plus) spec = { ...spec, plus: false };
  switch (typeof arg) {
    case 'undefined':
      // A typed zero value of unknown type: format it as the empty string.
      if (verb === 'v' || verb === 's') return pad('', spec);
      if (verb === 'q') return pad('""', spec);
      return badVerb(verb, arg);
    case 'boolean':
      return verb === 'v' || verb === 't' ? pad(String(arg), spec) : badVerb(verb, arg);
    case 'number':
      return formatNumberArg(arg, verb, spec);
    case 'bigint':
      return formatNumberArg(Number(arg), verb, spec);
    case 'string':
      return formatStringArg(arg, verb, spec);
    case 'function':
      return verb === 'v' ? pad('<func>', spec) : badVerb(verb, arg);
    default: {
      if (arg === null) return verb === 'v' ? pad('<nil>', spec) : badVerb(verb, arg);
      checkDepth(depth);
      if (verb === 'v' && spec.sharp) return goSyntax(arg, depth);
      if (Array.isArray(arg)) {
        return `[${arg.map((element) => formatElement(element, verb, spec, depth + 1)).join(' ')}]`;
      }
      const map = arg as GoMap;
      const entries = sortedKeys(map).map(
        (key) => `${formatArg(key, verb, spec, depth + 1)}:${formatElement(map[key], verb, spec, depth + 1)}`,
      );
      return `map[${entries.join(' ')}]`;
    }
  }
}

/** An element of a slice or map: a nil one is written as <nil> whatever the verb, width or flags. */
function formatElement(element: unknown, verb: string, spec: Spec, depth: number): string {
  return element === null || element === undefined ? '<nil>' : formatArg(element, verb, spec, depth);
}

/** %#v: a Go-syntax representation of the value. */
function goSyntax(value: unknown, depth: number): string {
  checkDepth(depth);
  if (typeof value === 'string') return quoteGo(value);
  if (value === null || value === undefined) return '<nil>';
  if (Array.isArray(value)) {
    return `[]interface {}{${value.map((element) => goSyntaxElement(element, depth + 1)).join(', ')}}`;
  }
  if (isMap(value)) {
    const entries = sortedKeys(value).map(
      (key) => `${quoteGo(key)}:${goSyntaxElement(value[key], depth + 1)}`,
    );
    return `map[string]interface {}{${entries.join(', ')}}`;
  }
  return formatValue(value);
}

function goSyntaxElement(value: unknown, depth: number): string {
  return value === null || value === undefined ? 'interface {}(nil)' : goSyntax(value, depth);
}

function formatNumberArg(value: number, verb: string, spec: Spec): string {
  const integer = Number.isInteger(value);
  switch (verb) {
    case 'v':
      return integer && Math.abs(value) < 1e21
        ? formatInteger(value, 10, 'd', spec)
        : formatFloatArg(value, 'g', spec.prec ?? -1, false, spec);
    case 'd':
    case 'b':
    case 'o':
    case 'O':
    case 'x':
    case 'X':
      if (!integer) return badVerb(verb, value);
      return formatInteger(
        value,
        verb === 'd' ? 10 : verb === 'b' ? 2 : verb === 'x' || verb === 'X' ? 16 : 8,
        verb,
        spec,
      );
    case 'c':
      return integer ? pad(String.fromCodePoint(validRune(value)), spec) : badVerb(verb, value);
    case 'q':
      return integer ? pad(quoteRune(value, spec.plus), spec) : badVerb(verb, value);
    case 'U': {
      if (!integer) return badVerb(verb, value);
      // Go formats the integer as a uint64, so a negative one wraps around.
      const code = BigInt.asUintN(64, BigInt(value));
      const hex = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
      const printable = value >= 0 && value <= 0x10ffff && validRune(value) === value;
      return pad(spec.sharp && printable ? `${hex} '${String.fromCodePoint(value)}'` : hex, spec);
    }
    case 'e':
    case 'E':
      return formatFloatArg(value, 'e', spec.prec ?? 6, verb === 'E', spec);
    case 'f':
    case 'F':
      return formatFloatArg(value, 'f', spec.prec ?? 6, false, spec);
    case 'g':
    case 'G':
      return formatFloatArg(value, 'g', spec.prec ?? -1, verb === 'G', spec);
    default:
      return badVerb(verb, value);
  }
}

function validRune(code: number): number {
  return code >= 0 && code <= 0x10ffff && !(code >= 0xd800 && code < 0xe000) ? code : 0xfffd;
}

function formatInteger(value: number, base: number, verb: string, spec: Spec): string {
  let digits = (value < 0 ? -BigInt(value) : BigInt(value)).toString(base);
  if (verb === 'X') digits = digits.toUpperCase();
  if (spec.prec !== undefined) digits = spec.prec === 0 && value === 0 ? '' : digits.padStart(spec.prec, '0');
  let prefix = '';
  if (verb === 'O') prefix = '0o';
  else if (spec.sharp) {
    if (verb === 'b') prefix = '0b';
    else if (verb === 'o' && !digits.startsWith('0')) prefix = '0';
    else if (verb === 'x') prefix = '0x';
    else if (verb === 'X') prefix = '0X';
  }
  const sign = value < 0 ? '-' : spec.plus ? '+' : spec.space ? ' ' : '';
  return padNumber(sign + prefix, digits, spec, spec.prec === undefined);
}

function formatFloatArg(
  value: number,
  format: 'e' | 'f' | 'g',
  prec: number,
  upper: boolean,
  spec: Spec,
): string {
  if (Number.isNaN(value)) return pad(spec.plus ? '+NaN' : spec.space ? ' NaN' : 'NaN', spec);
  const body = Number.isFinite(value) ? formatFloat(Math.abs(value), format, prec, upper) : 'Inf';
  const negative = value < 0 || Object.is(value, -0);
  const sign = negative ? '-' : spec.plus || !Number.isFinite(value) ? '+' : spec.space ? ' ' : '';
  return padNumber(sign, body, spec, Number.isFinite(value));
}

function formatStringArg(value: string, verb: string, spec: Spec): string {
  const truncated = spec.prec === undefined ? value : [...value].slice(0, spec.prec).join('');
  switch (verb) {
    case 'v':
      return pad(spec.sharp ? quoteGo(truncated) : truncated, spec);
    case 's':
      return pad(truncated, spec);
    case 'q':
      return pad(
        spec.sharp && canBackquote(truncated) ? `\`${truncated}\`` : quoteGo(truncated, spec.plus),
        spec,
      );
    case 'x':
    case 'X': {
      let bytes = Buffer.from(value, 'utf8');
      if (spec.prec !== undefined) bytes = bytes.subarray(0, spec.prec);
      const hex = [...bytes].map((byte) => byte.toString(16).padStart(2, '0'));
      const prefix = spec.sharp ? '0x' : '';
      let out = spec.space ? hex.map((h) => prefix + h).join(' ') : prefix + hex.join('');
      if (verb === 'X') out = out.toUpperCase();
      return pad(out, spec);
    }
    default:
      return badVerb(verb, value);
  }
}

const MAX_WIDTH = 1_000_000; // Go's fmt rejects larger widths and precisions too.

/** fmt.Sprintf for the verbs %v %s %q %d %b %o %O %x %X %c %U %e %E %f %F %g %G %t %%. */
export function sprintf(format: string, args: readonly unknown[]): string {
  let out = '';
  let argNum = 0;
  let reordered = false;
  let i = 0;
  while (i < format.length) {
    const percent = format.indexOf('%', i);
    if (percent === -1) {
      out += format.slice(i);
      break;
    }
    out += format.slice(i, percent);
    i = percent + 1;
    const spec: Spec = {};
    flags: for (; i < format.length; i++) {
      switch (format[i]) {
        case '#':
          spec.sharp = true;
          break;
        case '0':
          spec.zero = !spec.minus;
          break;
        case '+':
          spec.plus = true;
          break;
        case '-':
          spec.minus = true;
          spec.zero = false;
          break;
        case ' ':
          spec.space = true;
          break;
        default:
          break flags;
      }
    }
    // [n] picks the operand explicitly (1-based).
    const argIndex = (): boolean => {
      if (format[i] !== '[') return true;
      const close = format.indexOf(']', i);
      const n = close === -1 ? NaN : Number(format.slice(i + 1, close));
      reordered = true;
      if (!Number.isInteger(n) || n < 1 || n > args.length) {
        i = close === -1 ? format.length : close + 1;
        return false;
      }
      argNum = n - 1;
      i = close + 1;
      return true;
    };
    const readNumber = (): number | undefined => {
      const start = i;
      while (i < format.length && format[i]! >= '0' && format[i]! <= '9') i++;
      return i > start ? Number(format.slice(start, i)) : undefined;
    };
    let goodArgIndex = argIndex();
    if (format[i] === '*') {
      i++;
      const width = args[argNum++];
      if (typeof width !== 'number' || !Number.isInteger(width) || Math.abs(width) > MAX_WIDTH) {
        out += '%!(BADWIDTH)';
      } else if (width < 0) {
        spec.minus = true;
        spec.zero = false;
        spec.width = -width;
      } else {
        spec.width = width;
      }
    } else {
      spec.width = readNumber();
      if (spec.width !== undefined && spec.width > MAX_WIDTH) {
        spec.width = undefined;
        out += '%!(BADWIDTH)';
      }
    }
    if (format[i] === '.') {
      i++;
      goodArgIndex = argIndex() && goodArgIndex;
      if (format[i] === '*') {
        i++;
        const prec = args[argNum++];
        if (typeof prec !== 'number' || !Number.isInteger(prec) || prec < 0 || prec > MAX_WIDTH) {
          out += '%!(BADPREC)';
        } else {
          spec.prec = prec;
        }
      } else {
        spec.prec = readNumber() ?? 0;
        if (spec.prec > MAX_WIDTH) {
          spec.prec = undefined;
          out += '%!(BADPREC)';
        }
      }
    }
    goodArgIndex = argIndex() && goodArgIndex;
    if (i >= format.length) {
      out += '%!(NOVERB)';
      break;
    }
    const verb = String.fromCodePoint(format.codePointAt(i) ?? 0);
    i += verb.length;
    if (verb === '%') {
      out += '%';
    } else if (!goodArgIndex) {
      out += `%!${verb}(BADINDEX)`;
    } else if (argNum >= args.length) {
      out += `%!${verb}(MISSING)`;
    } else {
      out += formatArg(args[argNum++], verb, spec, 0);
    }
    checkResultSize(out.length);
  }
  if (!reordered && argNum < args.length) {
    const extra = args
      .slice(argNum)
      .map((arg) => (arg === null || arg === undefined ? '<nil>' : `${goTypeName(arg)}=${formatValue(arg)}`));
    out += `%!(EXTRA ${extra.join(', ')})`;
  }
  return out;
}
