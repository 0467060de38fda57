// Lexer and parser for Go text/template source, producing an AST that exec.ts walks. The grammar, the token
// rules (trim markers, comments, number syntax, keywords) and the parse-time checks (unknown functions,
// undefined variables, {{break}} outside {{range}}, missing {{end}}) follow the documented behaviour of
// Go's text/template/parse; see index.ts for the deliberate differences.

/** A parse or execution error, worded like Go's: `template: NAME:LINE:COL: ...`. */
export class GoTemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GoTemplateError';
  }
}

// ---------------------------------------------------------------------------------------------------------
// AST

/** A field name with the object keys it may resolve to, computed once at parse time (see fieldCandidates). */
export interface FieldRef {
  readonly name: string;
  readonly keys: readonly string[];
}

export interface PipeNode {
  readonly pos: number;
  readonly src: string;
  /** Variables declared (`:=`) or assigned (`=`) with the pipeline's value. */
  readonly decl: readonly string[];
  readonly isAssign: boolean;
  readonly cmds: readonly CommandNode[];
}

export interface CommandNode {
  readonly pos: number;
  readonly src: string;
  readonly args: readonly ArgNode[];
}

export type ArgNode =
  | {
      readonly kind: 'field';
      readonly pos: number;
      readonly src: string;
      readonly fields: readonly FieldRef[];
    }
  | {
      readonly kind: 'variable';
      readonly pos: number;
      readonly src: string;
      readonly name: string;
      readonly fields: readonly FieldRef[];
    }
  | {
      readonly kind: 'chain';
      readonly pos: number;
      readonly src: string;
      readonly node: ArgNode;
      readonly fields: readonly FieldRef[];
    }
  | { readonly kind: 'identifier'; readonly pos: number; readonly src: string; readonly name: string }
  | { readonly kind: 'pipe'; readonly pos: number; readonly src: string; readonly pipe: PipeNode }
  | { readonly kind: 'dot'; readonly pos: number; readonly src: string }
  | { readonly kind: 'nil'; readonly pos: number; readonly src: string }
  | {
      readonly kind: 'literal';
      readonly pos: number;
      readonly src: string;
      readonly value: string | number | boolean;
    };

/** {{if}}, {{with}} and {{range}}: a pipeline, a body and an optional {{else}} body. */
export interface ControlNode {
  readonly kind: 'if' | 'with' | 'range';
  readonly pos: number;
  readonly src: string;
  readonly pipe: PipeNode;
  readonly list: readonly Node[];
  readonly elseList: readonly Node[] | undefined;
}

/** {{template "name" pipeline}} (and the call half of {{block}}). */
export interface TemplateCallNode {
  readonly kind: 'template';
  readonly pos: number;
  readonly src: string;
  readonly name: string;
  readonly pipe: PipeNode | undefined;
}

export type Node =
  | { readonly kind: 'text'; readonly pos: number; readonly text: string }
  | { readonly kind: 'action'; readonly pos: number; readonly src: string; readonly pipe: PipeNode }
  | ControlNode
  | TemplateCallNode
  | { readonly kind: 'break' | 'continue'; readonly pos: number; readonly src: string };

/** The parsed text: the main template and every {{define}}/{{block}} in it, by name. */
export interface TemplateSet {
  readonly name: string;
  readonly text: string;
  readonly trees: ReadonlyMap<string, readonly Node[]>;
}

// ---------------------------------------------------------------------------------------------------------
// Positions and messages

/** Go's `NAME:LINE:COL` where COL counts the bytes before `pos` on its line (0-based, as Go reports it). */
/**
 * Where a quoted string or character constant opened at `start` ends (just past its closing quote), skipping
 * escapes; undefined when a newline or the end of the text comes first.
 */
function quotedEnd(text: string, start: number, quote: string): number | undefined {
  let p = start + 1;
  for (;;) {
    const d = text[p];
    if (d === undefined || d === '\n') return undefined;
    if (d === '\\') {
      const e = text[p + 1];
      if (e === undefined || e === '\n') return undefined;
      p += 2;
      continue;
    }
    p++;
    if (d === quote) return p;
  }
}

/** `name:line:column` as Go's execution errors give it (the column in bytes), or `name:line` as its parse errors do. */
export function location(name: string, text: string, pos: number, withColumn = true): string {
  const before = text.slice(0, pos);
  const lineStart = before.lastIndexOf('\n') + 1;
  let line = 1;
  for (let i = before.indexOf('\n'); i !== -1; i = before.indexOf('\n', i + 1)) line++;
  return withColumn
    ? `${name}:${line}:${Buffer.byteLength(before.slice(lineStart), 'utf8')}`
    : `${name}:${line}`;
}

// Keys that must never be read from or written to data objects.
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * The object keys a Go field name may resolve to on JSON-shaped data: the exact name, then the name as
 * encoding/json spells Kubernetes and Istio fields (the leading capital run lower-cased, keeping the last
 * capital of a run that starts a new word: DNSPolicy -> dnsPolicy, HostIPC -> hostIPC, URL -> url), then
 * the same for a protobuf getter (GetFoo -> Foo, foo).
 */
export function fieldCandidates(name: string): string[] {
  const keys: string[] = [];
  const add = (key: string): void => {
    if (!FORBIDDEN_KEYS.has(key) && !keys.includes(key)) keys.push(key);
  };
  add(name);
  add(jsonFieldName(name));
  if (/^Get[A-Z]/.test(name)) {
    add(name.slice(3));
    add(jsonFieldName(name.slice(3)));
  }
  return keys;
}

function jsonFieldName(name: string): string {
  let run = 0;
  while (run < name.length && isUpperAscii(name.charCodeAt(run))) run++;
  if (run === 0) return name;
  if (run === name.length) return name.toLowerCase();
  // A run longer than one letter followed by a lower-case letter: its last capital starts the next word.
  const keep = run > 1 && isLowerAscii(name.charCodeAt(run)) ? run - 1 : run;
  return name.slice(0, keep).toLowerCase() + name.slice(keep);
}

const isUpperAscii = (c: number): boolean => c >= 65 && c <= 90;
const isLowerAscii = (c: number): boolean => c >= 97 && c <= 122;

// ---------------------------------------------------------------------------------------------------------
// Lexer

type TokenType =
  | 'text'
  | 'leftDelim'
  | 'rightDelim'
  | 'space'
  | 'field'
  | 'variable'
  | 'identifier'
  | 'keyword'
  | 'bool'
  | 'nil'
  | 'dot'
  | 'number'
  | 'char'
  | 'string'
  | 'rawString'
  | 'pipe'
  | 'leftParen'
  | 'rightParen'
  | 'assign'
  | 'declare'
  | 'comma'
  | 'otherChar'
  | 'error'
  | 'eof';

interface Token {
  readonly type: TokenType;
  /** The source text of the token (the message for an error token, the trimmed text for a text token). */
  readonly val: string;
  readonly pos: number;
}

const KEYWORDS: ReadonlySet<string> = new Set([
  'block',
  'break',
  'continue',
  'define',
  'else',
  'end',
  'if',
  'range',
  'template',
  'with',
]);

const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\r' || c === '\n';
const ALNUM = /^[\p{L}\p{Nd}_]$/u;
const isAlphaNumeric = (c: string | undefined): boolean => c !== undefined && ALNUM.test(c);

/** Tokenises the whole text. A lexical error becomes an 'error' token; the parser reports it when reached. */
function lex(text: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  let trimNextText = false;

  const rightDelimAt = (p: number): { trim: boolean } | undefined => {
    if (isSpace(text[p]) && text[p + 1] === '-' && text.startsWith('}}', p + 2)) return { trim: true };
    if (text.startsWith('}}', p)) return { trim: false };
    return undefined;
  };
  const skipSpaceRun = (p: number): number => {
    while (p < text.length && isSpace(text[p])) p++;
    return p;
  };
  // The token being scanned inside an action starts at tokenStart; emit ends it at endPos.
  let tokenStart = 0;
  const emit = (type: TokenType, endPos: number): void => {
    tokens.push({ type, val: text.slice(tokenStart, endPos), pos: tokenStart });
    pos = endPos;
  };
  const fail = (message: string): Token[] => {
    tokens.push({ type: 'error', val: message, pos: tokenStart });
    return tokens;
  };

  while (pos < text.length) {
    // Text up to the next action.
    let open = text.indexOf('{{', pos);
    if (open === -1) open = text.length;
    const trimLeft = open < text.length && text[open + 2] === '-' && isSpace(text[open + 3]);
    let start = pos;
    if (trimNextText) start = skipSpaceRun(start);
    let end = open;
    if (trimLeft) while (end > start && isSpace(text[end - 1])) end--;
    if (end > start) tokens.push({ type: 'text', val: text.slice(start, end), pos: start });
    trimNextText = false;
    if (open >= text.length) break;

    pos = open + 2 + (trimLeft ? 2 : 0);
    // A comment must start right after the delimiter (and its trim marker).
    if (text.startsWith('/*', pos)) {
      const close = text.indexOf('*/', pos + 2);
      if (close === -1) {
        tokens.push({ type: 'error', val: 'unclosed comment', pos: open });
        return tokens;
      }
      const delim = rightDelimAt(close + 2);
      if (!delim) {
        tokens.push({ type: 'error', val: 'comment ends before closing delimiter', pos: open });
        return tokens;
      }
      pos = close + 2 + (delim.trim ? 2 : 0) + 2;
      trimNextText = delim.trim;
      continue;
    }
    tokens.push({ type: 'leftDelim', val: text.slice(open, pos), pos: open });

    // Inside the action.
    let parenDepth = 0;
    for (;;) {
      const delim = rightDelimAt(pos);
      if (delim) {
        if (parenDepth > 0) {
          tokens.push({ type: 'error', val: 'unclosed left paren', pos });
          return tokens;
        }
        const len = delim.trim ? 4 : 2;
        tokens.push({ type: 'rightDelim', val: text.slice(pos, pos + len), pos });
        pos += len;
        trimNextText = delim.trim;
        break;
      }
      const c = text[pos];
      if (c === undefined) {
        tokens.push({ type: 'error', val: 'unclosed action', pos: open });
        return tokens;
      }
      tokenStart = pos;
      if (isSpace(c)) {
        let p = skipSpaceRun(pos);
        // Leave the last space for a trim-marked right delimiter.
        if (text[p] === '-' && text.startsWith('}}', p + 1)) p--;
        if (p > pos) emit('space', p);
        continue;
      }
      switch (c) {
        case '=':
          emit('assign', pos + 1);
          continue;
        case ':':
          if (text[pos + 1] !== '=') return fail('expected :=');
          emit('declare', pos + 2);
          continue;
        case '|':
          emit('pipe', pos + 1);
          continue;
        case ',':
          emit('comma', pos + 1);
          continue;
        case '(':
          parenDepth++;
          emit('leftParen', pos + 1);
          continue;
        case ')':
          parenDepth--;
          if (parenDepth < 0) return fail('unexpected right paren');
          emit('rightParen', pos + 1);
          continue;
        case '"': {
          const end = quotedEnd(text, pos, '"');
          if (end === undefined) return fail('unterminated quoted string');
          emit('string', end);
          continue;
        }
        case '`': {
          const close = text.indexOf('`', pos + 1);
          if (close === -1) return fail('unterminated raw quoted string');
          emit('rawString', close + 1);
          continue;
        }
        case "'": {
          const end = quotedEnd(text, pos, "'");
          if (end === undefined) return fail('unterminated character constant');
          emit('char', end);
          continue;
        }
        case '$':
        case '.': {
          if (c === '.' && text[pos + 1] !== undefined && /[0-9]/.test(text[pos + 1] ?? '')) break; // a number
          let p = pos + 1;
          while (p < text.length && isAlphaNumeric(codePointAt(text, p))) p += codePointAt(text, p).length;
          if (!atTerminator(p)) return fail(`bad character ${goRuneName(codePointAt(text, p))}`);
          emit(p === pos + 1 && c === '.' ? 'dot' : c === '$' ? 'variable' : 'field', p);
          continue;
        }
      }
      if (c === '+' || c === '-' || c === '.' || (c >= '0' && c <= '9')) {
        const p = scanNumber(pos);
        if (p < 0) return fail(`bad number syntax: ${goQuoteSimple(text.slice(pos, -p))}`);
        emit('number', p);
        continue;
      }
      const cp = codePointAt(text, pos);
      if (isAlphaNumeric(cp)) {
        let p = pos;
        while (p < text.length && isAlphaNumeric(codePointAt(text, p))) p += codePointAt(text, p).length;
        if (!atTerminator(p)) return fail(`bad character ${goRuneName(codePointAt(text, p))}`);
        const word = text.slice(pos, p);
        emit(
          KEYWORDS.has(word)
            ? 'keyword'
            : word === 'true' || word === 'false'
              ? 'bool'
              : word === 'nil'
                ? 'nil'
                : 'identifier',
          p,
        );
        continue;
      }
      if (c.charCodeAt(0) < 0x7f && c.charCodeAt(0) > 0x20) {
        emit('otherChar', pos + 1);
        continue;
      }
      return fail(`unrecognized character in action: ${goRuneName(cp)}`);
    }
  }
  tokens.push({ type: 'eof', val: '', pos: text.length });
  return tokens;

  function atTerminator(p: number): boolean {
    const c = text[p];
    if (c === undefined || isSpace(c)) return true;
    if (c === '.' || c === ',' || c === '|' || c === ':' || c === ')' || c === '(') return true;
    return text.startsWith('}}', p);
  }

  /** Go's scanNumber: returns the end of the number, or -(end) when an alphanumeric follows it. */
  function scanNumber(p: number): number {
    const accept = (chars: string): boolean => {
      const c = text[p];
      if (c !== undefined && chars.includes(c)) {
        p++;
        return true;
      }
      return false;
    };
    const acceptRun = (chars: string): void => {
      while (accept(chars));
    };
    accept('+-');
    let digits = '0123456789_';
    if (accept('0')) {
      if (accept('xX')) digits = '0123456789abcdefABCDEF_';
      else if (accept('oO')) digits = '01234567_';
      else if (accept('bB')) digits = '01_';
    }
    acceptRun(digits);
    if (accept('.')) acceptRun(digits);
    if (digits.length === 11 && accept('eE')) {
      accept('+-');
      acceptRun('0123456789_');
    }
    if (digits.length === 23 && accept('pP')) {
      accept('+-');
      acceptRun('0123456789_');
    }
    accept('i');
    if (isAlphaNumeric(codePointAt(text, p))) return -(p + codePointAt(text, p).length);
    return p;
  }
}

function codePointAt(text: string, pos: number): string {
  const cp = text.codePointAt(pos);
  return cp === undefined ? '' : String.fromCodePoint(cp);
}

/** Go's %#U: `U+002D '-'`. */
function goRuneName(ch: string): string {
  if (ch === '') return 'EOF';
  const code = ch.codePointAt(0) ?? 0;
  return `U+${code.toString(16).toUpperCase().padStart(4, '0')} '${ch}'`;
}

/** Double-quotes a short string for a message (enough of strconv.Quote for token text). */
function goQuoteSimple(s: string): string {
  return JSON.stringify(s);
}

// ---------------------------------------------------------------------------------------------------------
// Literals

/** Parses a Go number literal as text/template accepts it (ints in any base, floats, underscores). */
export function parseNumberLiteral(text: string): number | undefined {
  let s = text;
  let sign = 1;
  if (s.startsWith('+') || s.startsWith('-')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  const clean = (digits: string): string => digits.replace(/_/g, '');
  let m: RegExpExecArray | null;
  if ((m = /^0[xX]((?:_?[0-9a-fA-F])+)$/.exec(s))) return sign * Number.parseInt(clean(m[1] ?? ''), 16);
  if ((m = /^0[oO]((?:_?[0-7])+)$/.exec(s))) return sign * Number.parseInt(clean(m[1] ?? ''), 8);
  if ((m = /^0[bB]((?:_?[01])+)$/.exec(s))) return sign * Number.parseInt(clean(m[1] ?? ''), 2);
  if ((m = /^0((?:_?[0-7])*)$/.exec(s))) return sign * (m[1] ? Number.parseInt(clean(m[1]), 8) : 0);
  if (/^[1-9](?:_?[0-9])*$/.test(s)) return sign * Number(clean(s));
  // Hexadecimal float: the mantissa needs a p exponent.
  if (
    (m =
      /^0[xX]((?:_?[0-9a-fA-F])*)(?:\.([0-9a-fA-F](?:_?[0-9a-fA-F])*)?)?[pP]([+-]?[0-9](?:_?[0-9])*)$/.exec(
        s,
      ))
  ) {
    const intPart = clean(m[1] ?? '');
    const frac = clean(m[2] ?? '');
    if (intPart === '' && frac === '') return undefined;
    const mantissa = Number.parseInt(intPart + frac || '0', 16);
    return sign * mantissa * 2 ** (Number(clean(m[3] ?? '0')) - 4 * frac.length);
  }
  const digit = '[0-9](?:_?[0-9])*';
  const decimalFloat = new RegExp(`^(?:${digit}(?:\\.(?:${digit})?)?|\\.${digit})(?:[eE][+-]?${digit})?$`);
  if (decimalFloat.test(s)) return sign * Number(clean(s));
  return undefined;
}

/** Decodes one escape sequence of a Go string or rune literal; `bytes` collects \x and octal bytes. */
function unquoteGo(body: string, quote: '"' | "'"): string | undefined {
  if (!body.includes('\\')) return body;
  let out = '';
  let bytes: number[] = [];
  const flushBytes = (): void => {
    if (bytes.length > 0) {
      out += Buffer.from(bytes).toString('utf8');
      bytes = [];
    }
  };
  for (let i = 0; i < body.length;) {
    const c = body[i];
    if (c !== '\\') {
      flushBytes();
      out += c;
      i++;
      continue;
    }
    const e = body[i + 1];
    i += 2;
    const simple: Record<string, string> = {
      a: '\x07',
      b: '\b',
      f: '\f',
      n: '\n',
      r: '\r',
      t: '\t',
      v: '\v',
      '\\': '\\',
    };
    if (e !== undefined && Object.hasOwn(simple, e)) {
      flushBytes();
      out += simple[e];
    } else if (e === quote) {
      flushBytes();
      out += e;
    } else if (e === 'x') {
      const hex = body.slice(i, i + 2);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 2;
    } else if (e !== undefined && e >= '0' && e <= '7') {
      const oct = body.slice(i - 1, i + 2);
      if (!/^[0-7]{3}$/.test(oct) || Number.parseInt(oct, 8) > 255) return undefined;
      bytes.push(Number.parseInt(oct, 8));
      i += 2;
    } else if (e === 'u' || e === 'U') {
      const n = e === 'u' ? 4 : 8;
      const hex = body.slice(i, i + n);
      if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(hex)) return undefined;
      const code = Number.parseInt(hex, 16);
      if (code > 0x10ffff || (code >= 0xd800 && code < 0xe000)) return undefined;
      flushBytes();
      out += String.fromCodePoint(code);
      i += n;
    } else {
      return undefined;
    }
  }
  flushBytes();
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Parser

type Marker = { readonly kind: 'end' | 'else'; readonly pos: number; readonly src: string };

const MAX_NESTING = 200;

interface ParseOptions {
  readonly name: string;
  readonly text: string;
  readonly isFunction: (name: string) => boolean;
}

class Parser {
  private readonly tokens: Token[];
  private index = 0;
  private vars: string[] = ['$'];
  private rangeDepth = 0;
  private nesting = 0;
  private readonly trees = new Map<string, readonly Node[]>();

  constructor(private readonly options: ParseOptions) {
    this.tokens = lex(options.text);
  }

  parse(): TemplateSet {
    const root: Node[] = [];
    while (this.peek().type !== 'eof') {
      // {{define}} is only recognised at the top level.
      if (this.peek().type === 'leftDelim') {
        const save = this.index;
        this.next();
        const word = this.nextNonSpace();
        if (word.type === 'keyword' && word.val === 'define') {
          this.parseDefinition();
          continue;
        }
        this.index = save;
      }
      const node = this.textOrAction();
      if (isMarker(node)) this.fail(node.pos, `unexpected {{${node.kind}}}`);
      root.push(node);
    }
    this.addTree(this.options.name, root, this.peek().pos);
    return { name: this.options.name, text: this.options.text, trees: this.trees };
  }

  // --- token access --------------------------------------------------------------------------------------

  private peek(): Token {
    const token = this.tokens[this.index] ?? this.tokens[this.tokens.length - 1];
    if (!token) throw new Error('internal error: no tokens');
    if (token.type === 'error') this.fail(token.pos, token.val);
    return token;
  }

  private next(): Token {
    const token = this.peek();
    if (this.index < this.tokens.length - 1) this.index++;
    return token;
  }

  private nextNonSpace(): Token {
    let token = this.next();
    while (token.type === 'space') token = this.next();
    return token;
  }

  private peekNonSpace(): Token {
    const save = this.index;
    const token = this.nextNonSpace();
    this.index = save;
    return token;
  }

  /** Skips spaces so the next token is significant. */
  private skipSpace(): void {
    while (this.peek().type === 'space') this.next();
  }

  private backup(): void {
    this.index--;
  }

  private endOfPrevious(): number {
    const previous = this.tokens[this.index - 1];
    return previous ? previous.pos + previous.val.length : 0;
  }

  private fail(pos: number, message: string): never {
    throw new GoTemplateError(
      `template: ${location(this.options.name, this.options.text, pos, false)}: ${message}`,
    );
  }

  private unexpected(token: Token, context: string): never {
    this.fail(token.pos, `unexpected ${tokenString(token)} in ${context}`);
  }

  private expect(type: TokenType, context: string): Token {
    const token = this.nextNonSpace();
    if (token.type !== type) this.unexpected(token, context);
    return token;
  }

  private enter(pos: number): void {
    if (++this.nesting > MAX_NESTING) this.fail(pos, `template nesting exceeds ${MAX_NESTING} levels`);
  }

  // --- structure -----------------------------------------------------------------------------------------

  private addTree(name: string, root: readonly Node[], pos: number): void {
    const existing = this.trees.get(name);
    if (existing === undefined || isEmptyTree(existing)) {
      this.trees.set(name, root);
    } else if (!isEmptyTree(root)) {
      this.fail(pos, `template: multiple definition of template ${JSON.stringify(name)}`);
    }
  }

  private parseDefinition(): void {
    const context = 'define clause';
    const nameToken = this.nextNonSpace();
    const name = this.templateName(nameToken, context);
    this.expect('rightDelim', context);
    const [list, end] = this.withFreshScope(() => this.itemList());
    if (end.kind !== 'end') this.fail(end.pos, `unexpected {{${end.kind}}} in ${context}`);
    this.addTree(name, list, nameToken.pos);
  }

  /** Runs `body` with the variable scope and range depth of a new template ({{define}}, {{block}}). */
  private withFreshScope<T>(body: () => T): T {
    const [vars, rangeDepth] = [this.vars, this.rangeDepth];
    this.vars = ['$'];
    this.rangeDepth = 0;
    try {
      return body();
    } finally {
      this.vars = vars;
      this.rangeDepth = rangeDepth;
    }
  }

  private itemList(): [Node[], Marker] {
    const list: Node[] = [];
    while (this.peekNonSpace().type !== 'eof') {
      const node = this.textOrAction();
      if (isMarker(node)) return [list, node];
      list.push(node);
    }
    this.fail(this.peek().pos, 'unexpected EOF');
  }

  private textOrAction(): Node | Marker {
    const token = this.nextNonSpace();
    if (token.type === 'text') return { kind: 'text', pos: token.pos, text: token.val };
    if (token.type === 'leftDelim') return this.action(token);
    this.unexpected(token, 'input');
  }

  private action(open: Token): Node | Marker {
    const token = this.nextNonSpace();
    if (token.type === 'keyword') {
      switch (token.val) {
        case 'block':
          return this.blockControl(open);
        case 'break':
        case 'continue':
          return this.loopControl(open, token.val);
        case 'else':
          return this.elseControl(open);
        case 'end':
          this.expect('rightDelim', 'end');
          return { kind: 'end', pos: token.pos, src: '{{end}}' };
        case 'if':
        case 'range':
        case 'with':
          return this.control(open, token.val);
        case 'template':
          return this.templateControl(open);
      }
    }
    this.backup();
    const pipe = this.pipeline('command', 'rightDelim');
    return { kind: 'action', pos: open.pos, src: `{{${pipe.src}}}`, pipe };
  }

  private control(open: Token, context: 'if' | 'range' | 'with'): Node {
    this.enter(open.pos);
    const mark = this.vars.length;
    const pipe = this.pipeline(context, 'rightDelim');
    const src = `{{${context} ${pipe.src}}}`;
    if (context === 'range') this.rangeDepth++;
    const [list, next] = this.itemList();
    if (context === 'range') this.rangeDepth--;
    let elseList: Node[] | undefined;
    if (next.kind === 'else') {
      const following = this.peek();
      // {{else if}} and {{else with}} open a nested control whose {{end}} closes this one too.
      if (following.type === 'keyword' && following.val === context && context !== 'range') {
        const keyword = this.next();
        elseList = [this.control(keyword, context)];
      } else {
        const [list2, end] = this.itemList();
        if (end.kind !== 'end') this.fail(end.pos, `expected end; found {{${end.kind}}}`);
        elseList = list2;
      }
    }
    this.vars.length = mark;
    this.nesting--;
    return { kind: context, pos: pipe.pos, src, pipe, list, elseList };
  }

  private elseControl(open: Token): Marker {
    const following = this.peekNonSpace();
    if (following.type === 'keyword' && (following.val === 'if' || following.val === 'with')) {
      this.skipSpace();
      return { kind: 'else', pos: following.pos, src: '{{else}}' };
    }
    this.expect('rightDelim', 'else');
    return { kind: 'else', pos: open.pos, src: '{{else}}' };
  }

  private loopControl(open: Token, keyword: 'break' | 'continue'): Node {
    const token = this.nextNonSpace();
    if (token.type !== 'rightDelim') this.unexpected(token, `{{${keyword}}}`);
    if (this.rangeDepth === 0) this.fail(open.pos, `{{${keyword}}} outside {{range}}`);
    return { kind: keyword, pos: open.pos, src: `{{${keyword}}}` };
  }

  private templateControl(open: Token): Node {
    const context = 'template clause';
    const nameToken = this.nextNonSpace();
    const name = this.templateName(nameToken, context);
    let pipe: PipeNode | undefined;
    if (this.nextNonSpace().type !== 'rightDelim') {
      this.backup();
      pipe = this.pipeline(context, 'rightDelim');
    }
    const src = `{{template ${JSON.stringify(name)}${pipe ? ` ${pipe.src}` : ''}}}`;
    return { kind: 'template', pos: open.pos, src, name, pipe };
  }

  private blockControl(open: Token): Node {
    const context = 'block clause';
    const nameToken = this.nextNonSpace();
    const name = this.templateName(nameToken, context);
    const pipe = this.pipeline(context, 'rightDelim');
    this.enter(open.pos);
    const [list, end] = this.withFreshScope(() => this.itemList());
    this.nesting--;
    if (end.kind !== 'end') this.fail(end.pos, `unexpected {{${end.kind}}} in ${context}`);
    this.addTree(name, list, nameToken.pos);
    const src = `{{template ${JSON.stringify(name)} ${pipe.src}}}`;
    return { kind: 'template', pos: open.pos, src, name, pipe };
  }

  private templateName(token: Token, context: string): string {
    if (token.type === 'string' || token.type === 'rawString') return this.stringValue(token);
    this.unexpected(token, context);
  }

  // --- pipelines -----------------------------------------------------------------------------------------

  private pipeline(context: string, end: 'rightDelim' | 'rightParen'): PipeNode {
    const start = this.peekNonSpace();
    const decl: string[] = [];
    let isAssign = false;
    // Declarations: `$x :=`, `$x =`, and in range `$i, $e :=`.
    for (;;) {
      const variable = this.peekNonSpace();
      if (variable.type !== 'variable') break;
      const save = this.index;
      this.nextNonSpace();
      const operator = this.peekNonSpace();
      if (operator.type === 'assign' || operator.type === 'declare') {
        this.nextNonSpace();
        isAssign = operator.type === 'assign';
        decl.push(variable.val);
        this.vars.push(variable.val);
        break;
      }
      if (operator.type === 'comma') {
        this.nextNonSpace();
        decl.push(variable.val);
        this.vars.push(variable.val);
        if (context === 'range' && decl.length < 2) {
          const following = this.peekNonSpace().type;
          if (following === 'variable' || following === 'rightDelim' || following === 'rightParen') continue;
          this.fail(operator.pos, 'range can only initialize variables');
        }
        this.fail(operator.pos, `too many declarations in ${context}`);
      }
      this.index = save;
      break;
    }
    const cmds: CommandNode[] = [];
    for (;;) {
      const token = this.nextNonSpace();
      if (token.type === end) {
        this.checkPipeline(cmds, context, token.pos);
        const src = this.options.text.slice(start.pos, token.pos).trim();
        return { pos: start.pos, src, decl, isAssign, cmds };
      }
      switch (token.type) {
        case 'bool':
        case 'char':
        case 'dot':
        case 'field':
        case 'identifier':
        case 'number':
        case 'nil':
        case 'rawString':
        case 'string':
        case 'variable':
        case 'leftParen':
          this.backup();
          cmds.push(this.command());
          continue;
        default:
          this.unexpected(token, context);
      }
    }
  }

  private checkPipeline(cmds: readonly CommandNode[], context: string, pos: number): void {
    if (cmds.length === 0) this.fail(pos, `missing value for ${context}`);
    cmds.forEach((cmd, i) => {
      const first = cmd.args[0];
      if (i > 0 && first && (first.kind === 'literal' || first.kind === 'dot' || first.kind === 'nil')) {
        this.fail(cmd.pos, `non executable command in pipeline stage ${i + 1}`);
      }
    });
  }

  private command(): CommandNode {
    const pos = this.peekNonSpace().pos;
    const args: ArgNode[] = [];
    let end = pos;
    for (;;) {
      this.skipSpace();
      const operand = this.operand();
      if (operand) {
        args.push(operand);
        end = this.endOfPrevious();
      }
      const token = this.next();
      if (token.type === 'space') continue;
      if (token.type === 'rightDelim' || token.type === 'rightParen') {
        this.backup();
      } else if (token.type !== 'pipe') {
        this.unexpected(token, 'operand');
      }
      break;
    }
    if (args.length === 0) this.fail(pos, 'empty command');
    return { pos, src: this.options.text.slice(pos, end), args };
  }

  private operand(): ArgNode | undefined {
    const node = this.term();
    if (!node || this.peek().type !== 'field') return node;
    const fields: FieldRef[] = [];
    while (this.peek().type === 'field') fields.push(fieldRef(this.next().val.slice(1)));
    const src = this.options.text.slice(node.pos, this.endOfPrevious());
    switch (node.kind) {
      case 'field':
        return { kind: 'field', pos: node.pos, src, fields: [...node.fields, ...fields] };
      case 'variable':
        return { ...node, src, fields: [...node.fields, ...fields] };
      case 'literal':
      case 'nil':
      case 'dot':
        return this.fail(node.pos, `unexpected . after term ${JSON.stringify(node.src)}`);
      default:
        return { kind: 'chain', pos: node.pos, src, node, fields };
    }
  }

  private term(): ArgNode | undefined {
    const token = this.nextNonSpace();
    const { pos, val: src } = token;
    switch (token.type) {
      case 'identifier':
        if (!this.options.isFunction(token.val))
          this.fail(pos, `function ${JSON.stringify(token.val)} not defined`);
        return { kind: 'identifier', pos, src, name: token.val };
      case 'dot':
        return { kind: 'dot', pos, src };
      case 'nil':
        return { kind: 'nil', pos, src };
      case 'variable': {
        const name = token.val;
        if (!this.vars.includes(name)) this.fail(pos, `undefined variable ${JSON.stringify(name)}`);
        return { kind: 'variable', pos, src, name, fields: [] };
      }
      case 'field':
        return { kind: 'field', pos, src, fields: [fieldRef(token.val.slice(1))] };
      case 'bool':
        return { kind: 'literal', pos, src, value: token.val === 'true' };
      case 'number': {
        if (token.val.endsWith('i')) this.fail(pos, `complex numbers are not supported: ${src}`);
        const value = parseNumberLiteral(token.val);
        if (value === undefined) this.fail(pos, `illegal number syntax: ${JSON.stringify(src)}`);
        return { kind: 'literal', pos, src, value };
      }
      case 'char': {
        const body = unquoteGo(src.slice(1, -1), "'");
        const chars = body === undefined ? [] : [...body];
        if (chars.length !== 1 || !chars[0]) this.fail(pos, `malformed character constant: ${src}`);
        return { kind: 'literal', pos, src, value: chars[0].codePointAt(0) ?? 0 };
      }
      case 'string':
      case 'rawString':
        return { kind: 'literal', pos, src, value: this.stringValue(token) };
      case 'leftParen': {
        this.enter(pos);
        const pipe = this.pipeline('parenthesized pipeline', 'rightParen');
        this.nesting--;
        return { kind: 'pipe', pos, src: `(${pipe.src})`, pipe };
      }
    }
    this.backup();
    return undefined;
  }

  private stringValue(token: Token): string {
    if (token.type === 'rawString') return token.val.slice(1, -1).replace(/\r/g, '');
    const value = unquoteGo(token.val.slice(1, -1), '"');
    if (value === undefined) this.fail(token.pos, `invalid syntax in string ${token.val}`);
    return value;
  }
}

function fieldRef(name: string): FieldRef {
  return { name, keys: fieldCandidates(name) };
}

function isMarker(node: Node | Marker): node is Marker {
  return node.kind === 'end' || node.kind === 'else';
}

/** Go's IsEmptyTree: only whitespace text (comments are already dropped). */
function isEmptyTree(list: readonly Node[]): boolean {
  return list.every((node) => node.kind === 'text' && node.text.trim() === '');
}

/** Go's item.String() for messages. */
function tokenString(token: Token): string {
  switch (token.type) {
    case 'eof':
      return 'EOF';
    case 'keyword':
      return `<${token.val}>`;
    default:
      return token.val.length > 10
        ? `${JSON.stringify(token.val.slice(0, 10))}...`
        : JSON.stringify(token.val);
  }
}

/** Parses template text; `isFunction` tells which identifiers are callable. */
export function parseTemplateSet(
  name: string,
  text: string,
  isFunction: (name: string) => boolean,
): TemplateSet {
  return new Parser({ name, text, isFunction }).parse();
}
