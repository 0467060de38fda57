// A regular-expression engine with Go `regexp` (RE2) syntax and semantics, backing sprig's regex functions
// (regexMatch, regexFind, regexFindAll, regexReplaceAll, regexReplaceAllLiteral, regexSplit, regexQuoteMeta).
// The patterns come from user-supplied injection templates rendered inside the admission webhook, so they
// are hostile input: JavaScript's RegExp backtracks (`(a*)*b` stalls the process for minutes on a few
// thousand characters), while Go's RE2 guarantees time linear in the input. User patterns therefore never
// reach RegExp. They are parsed here, compiled to a small instruction program and run on a Pike VM (a
// Thompson NFA simulation carrying capture slots), which steps every live thread once per input position
// and keeps at most one thread per instruction, so a search costs O(len(input) × size(program)). As in Go,
// the *All functions (findAll, replaceAll, split) run one search per match and a search may read past the
// end of its match, so their total can grow quadratically (`a*b|a` over "aaaa..."); every step of it is
// charged to the StepMeter, with which a caller bounds the work of one call or of many. RegExp is only used
// with fixed patterns built here from whitelists (Unicode category and script membership of one code point).
//
// Written from Go's documentation (pkg.go.dev/regexp, pkg.go.dev/regexp/syntax, the RE2 syntax wiki) and the
// behaviour its tests pin down; no Go or RE2 code is reused. Layout: errors and meters → Unicode helpers →
// character classes → AST and parser → compiler → Pike VM → the Re2 API.
//
// Inputs are JavaScript strings and are matched by code point: `.` consumes an astral character whole and
// a lone surrogate as a code point of its own. Reported indices are UTF-16 offsets.

// ---------------------------------------------------------------------------------------------------------
// Errors, limits and meters

/** A pattern Go's regexp.Compile would reject; the message is Go's, e.g. "error parsing regexp: missing closing ): `(a`". */
export class Re2SyntaxError extends Error {
  override readonly name = 'Re2SyntaxError';
  constructor(
    readonly code: string,
    readonly expr: string,
  ) {
    super(`error parsing regexp: ${code}: \`${expr}\``);
  }
}

/** Thrown by a StepMeter (such as StepBudget) that refuses more work; it aborts the match in progress. */
export class Re2BudgetError extends Error {
  override readonly name = 'Re2BudgetError';
}

/** Receives the work a match does (VM thread steps), in batches; it may throw to abort the match. */
export interface StepMeter {
  charge(steps: number): void;
}

/** A StepMeter that throws Re2BudgetError once more than `limit` steps have been charged to it. */
export class StepBudget implements StepMeter {
  private spent = 0;
  constructor(readonly limit: number) {}
  get used(): number {
    return this.spent;
  }
  charge(steps: number): void {
    this.spent += steps;
    if (this.spent > this.limit) {
      throw new Re2BudgetError(`regular expression work exceeded its budget of ${this.limit} steps`);
    }
  }
}

/** Go refuses `{n,m}` counts above 1000, and nested counted repeats whose product exceeds 1000. */
export const MAX_REPEAT_COUNT = 1000;
/** Go's parser refuses syntax trees deeper than 1000 ("expression nests too deeply"). */
export const MAX_NESTING_DEPTH = 1000;
/** Instructions after repeat expansion. Go's own bound is far larger; per-position work is bounded by this. */
export const MAX_PROGRAM_SIZE = 10_000;
/** The VM hands work to the meter in batches of at least this many steps (and once more at the end). */
const STEP_CHARGE_BATCH = 1024;

// Go's regexp/syntax ErrorCode texts.
const MISSING_BRACKET = 'missing closing ]';
const MISSING_PAREN = 'missing closing )';
const UNEXPECTED_PAREN = 'unexpected )';
const INVALID_CHAR_RANGE = 'invalid character class range';
const INVALID_ESCAPE = 'invalid escape sequence';
const INVALID_NAMED_CAPTURE = 'invalid named capture';
const INVALID_PERL_OP = 'invalid or unsupported Perl syntax';
const INVALID_REPEAT_OP = 'invalid nested repetition operator';
const INVALID_REPEAT_SIZE = 'invalid repeat count';
const MISSING_REPEAT_ARGUMENT = 'missing argument to repetition operator';
const TRAILING_BACKSLASH = 'trailing backslash at end of expression';
const NESTING_DEPTH = 'expression nests too deeply';
const TOO_LARGE = 'expression too large';

// ---------------------------------------------------------------------------------------------------------
// Unicode helpers

const MAX_CODE_POINT = 0x10ffff;

function charWidth(cp: number): number {
  return cp > 0xffff ? 2 : 1;
}

function isAsciiWordUnit(unit: number): boolean {
  return (
    (unit >= 0x30 && unit <= 0x39) ||
    (unit >= 0x41 && unit <= 0x5a) ||
    (unit >= 0x61 && unit <= 0x7a) ||
    unit === 0x5f
  );
}

function isAsciiAlnum(cp: number): boolean {
  return isAsciiWordUnit(cp) && cp !== 0x5f;
}

// Case-insensitive matching uses Unicode simple case folding, as Go does: a character matches when any
// member of its fold orbit ({k, K, U+212A KELVIN SIGN}, {s, S, U+017F LONG S}, ...) would. The orbits are
// the connected components of JavaScript's single-code-point toLowerCase/toUpperCase mappings, except that
// U+0131 (dotless i) uppercases to I only under the Turkic rules that simple folding leaves out (U+0130
// lowercases to two code points, so it links nothing). The unit tests check the result against ECMAScript's
// own simple case folding (/u + /i). Built on first use of (?i); no cased letter lies above U+1FFFF.
let foldOrbits: Map<number, readonly number[]> | undefined;
const LAST_CASED_CODE_POINT = 0x1ffff;
const DOTLESS_I = 0x131;

function buildFoldOrbits(): Map<number, readonly number[]> {
  const parent = new Map<number, number>();
  const root = (x: number): number => {
    let r = x;
    for (let p = parent.get(r); p !== undefined && p !== r; p = parent.get(r)) r = p;
    return r;
  };
  for (let cp = 0; cp <= LAST_CASED_CODE_POINT; cp++) {
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp === DOTLESS_I) continue;
    const ch = String.fromCodePoint(cp);
    for (const mapped of [ch.toLowerCase(), ch.toUpperCase()]) {
      const other = mapped.codePointAt(0) ?? cp;
      if (other === cp || mapped.length !== charWidth(other)) continue;
      const a = root(cp);
      const b = root(other);
      if (!parent.has(b)) parent.set(b, b);
      if (a !== b) parent.set(a, b);
    }
  }
  const byRoot = new Map<number, number[]>();
  for (const cp of parent.keys()) {
    const r = root(cp);
    const orbit = byRoot.get(r);
    if (orbit) orbit.push(cp);
    else byRoot.set(r, [cp]);
  }
  const orbits = new Map<number, readonly number[]>();
  for (const orbit of byRoot.values()) {
    orbit.sort((a, b) => a - b);
    for (const cp of orbit) orbits.set(cp, orbit);
  }
  return orbits;
}

/** The code points equivalent to `cp` under simple case folding, `cp` included (sorted). */
export function caseFoldOrbit(cp: number): readonly number[] {
  foldOrbits ??= buildFoldOrbits();
  return foldOrbits.get(cp) ?? [cp];
}

// \p{Name} accepts Go's unicode.Categories and unicode.Scripts keys (case-sensitive, as Go ≤ 1.24) plus Any.
// Membership is tested with a fixed RegExp built from the whitelisted name, cached per name.
const GO_CATEGORIES = new Set(
  'C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs'.split(
    ' ',
  ),
);
const GO_SCRIPTS = new Set(
  `Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak Bengali Bhaiksuki
  Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Cherokee
  Chorasmian Common Coptic Cuneiform Cypriot Cypro_Minoan Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan
  Egyptian_Hieroglyphs Elbasan Elymaic Ethiopic Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi
  Gurmukhi Han Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic Inherited
  Inscriptional_Pahlavi Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kawi Kayah_Li Kharoshthi
  Khitan_Small_Script Khmer Khojki Khudawadi Lao Latin Lepcha Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani
  Makasar Malayalam Mandaic Manichaean Marchen Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui
  Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi Mongolian Mro Multani Myanmar Nabataean Nag_Mundari Nandinagari
  New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki Old_Hungarian Old_Italic Old_North_Arabian
  Old_Permic Old_Persian Old_Sogdian Old_South_Arabian Old_Turkic Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong
  Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic Samaritan Saurashtra Sharada Shavian
  Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le
  Tai_Tham Tai_Viet Takri Tamil Tangsa Tangut Telugu Thaana Thai Tibetan Tifinagh Tirhuta Toto Ugaritic Vai
  Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square`
    .split(/\s+/)
    .filter((name) => name !== ''),
);
/** Every name \p{...} accepts. */
export const UNICODE_CLASS_NAMES: readonly string[] = ['Any', ...GO_CATEGORIES, ...GO_SCRIPTS];

type CharMatcher = (cp: number) => boolean;
// Keyed by whitelisted names only, so user input cannot grow it.
const unicodeTesters = new Map<string, CharMatcher | null>();

function unicodeClassTester(name: string): CharMatcher | undefined {
  if (name === 'Any') return () => true;
  // Go's C is Cc+Cf+Co+Cs; JavaScript's \p{C} also has the unassigned code points (Cn).
  const source =
    name === 'C'
      ? '[\\p{Cc}\\p{Cf}\\p{Co}\\p{Cs}]'
      : GO_CATEGORIES.has(name)
        ? `\\p{${name}}`
        : GO_SCRIPTS.has(name)
          ? `\\p{Script=${name}}`
          : undefined;
  if (source === undefined) return undefined;
  let tester = unicodeTesters.get(name);
  if (tester === undefined) {
    try {
      const re = new RegExp(`^${source}$`, 'u');
      tester = (cp) => re.test(String.fromCodePoint(cp));
    } catch {
      tester = null; // a script this Node's Unicode data does not know
    }
    unicodeTesters.set(name, tester);
  }
  return tester ?? undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Character classes

/** Ranges as flat [lo, hi, lo, hi, ...] pairs. */
type Ranges = readonly number[];
interface CharGroup {
  readonly ranges: Ranges;
  readonly negated: boolean;
}

function group(negated: boolean, ...pairs: number[]): CharGroup {
  return { ranges: pairs, negated };
}
const DIGIT = [0x30, 0x39];
const UPPER = [0x41, 0x5a];
const LOWER = [0x61, 0x7a];
const WORD = [...DIGIT, ...UPPER, 0x5f, 0x5f, ...LOWER];
const SPACE_PERL = [0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x20]; // \s has no \v, as in Go

// Perl classes are ASCII-only in Go.
const PERL_GROUPS: Readonly<Record<string, CharGroup>> = {
  d: group(false, ...DIGIT),
  D: group(true, ...DIGIT),
  s: group(false, ...SPACE_PERL),
  S: group(true, ...SPACE_PERL),
  w: group(false, ...WORD),
  W: group(true, ...WORD),
};

const POSIX_RANGES: Readonly<Record<string, number[]>> = {
  alnum: [...DIGIT, ...UPPER, ...LOWER],
  alpha: [...UPPER, ...LOWER],
  ascii: [0x00, 0x7f],
  blank: [0x09, 0x09, 0x20, 0x20],
  cntrl: [0x00, 0x1f, 0x7f, 0x7f],
  digit: DIGIT,
  graph: [0x21, 0x7e],
  lower: LOWER,
  print: [0x20, 0x7e],
  punct: [0x21, 0x2f, 0x3a, 0x40, 0x5b, 0x60, 0x7b, 0x7e],
  space: [0x09, 0x0d, 0x20, 0x20],
  upper: UPPER,
  word: WORD,
  xdigit: [...DIGIT, 0x41, 0x46, 0x61, 0x66],
};
const POSIX_GROUPS = new Map<string, CharGroup>();
for (const [name, ranges] of Object.entries(POSIX_RANGES)) {
  POSIX_GROUPS.set(`[:${name}:]`, group(false, ...ranges));
  POSIX_GROUPS.set(`[:^${name}:]`, group(true, ...ranges));
}

function inRanges(ranges: Ranges, cp: number): boolean {
  let lo = 0;
  let hi = ranges.length / 2 - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (cp < ranges[2 * mid]!) hi = mid - 1;
    else if (cp > ranges[2 * mid + 1]!) lo = mid + 1;
    else return true;
  }
  return false;
}

interface ClassPart {
  readonly test: CharMatcher;
  readonly negated: boolean;
}

/**
 * Collects the items of a class. As in Go, under (?i) each item's set is closed under case folding before
 * the item's own negation (\W, [:^alpha:], \P{Lu}) applies, and the class's [^...] negation comes last.
 */
class ClassBuilder {
  private readonly ranges: number[] = [];
  private readonly parts: ClassPart[] = [];

  addRange(lo: number, hi: number): void {
    this.ranges.push(lo, hi);
  }

  addGroup(g: CharGroup): void {
    if (!g.negated) this.ranges.push(...g.ranges);
    else this.parts.push({ test: (cp) => inRanges(g.ranges, cp), negated: true });
  }

  addUnicode(test: CharMatcher, negated: boolean): void {
    this.parts.push({ test, negated });
  }

  build(negated: boolean, fold: boolean): CharMatcher {
    const ranges = mergeRanges(this.ranges);
    const parts = this.parts;
    if (!fold) {
      return (cp) => (inRanges(ranges, cp) || parts.some((p) => p.test(cp) !== p.negated)) !== negated;
    }
    return (cp) => {
      const orbit = caseFoldOrbit(cp);
      const hit =
        orbit.some((x) => inRanges(ranges, x)) ||
        parts.some((p) => orbit.some((x) => p.test(x)) !== p.negated);
      return hit !== negated;
    };
  }
}

function mergeRanges(flat: readonly number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const merged: number[] = [];
  for (const [lo, hi] of pairs) {
    const last = merged.length - 1;
    if (last > 0 && lo <= merged[last]! + 1) merged[last] = Math.max(merged[last]!, hi);
    else merged.push(lo, hi);
  }
  return merged;
}

function literalMatcher(cp: number, fold: boolean): CharMatcher {
  const orbit = fold ? caseFoldOrbit(cp) : [cp];
  return orbit.length === 1 ? (c) => c === cp : (c) => orbit.includes(c);
}

const anyChar: CharMatcher = () => true;
const anyCharExceptNewline: CharMatcher = (cp) => cp !== 0x0a;

// ---------------------------------------------------------------------------------------------------------
// AST

const BEGIN_TEXT = 0;
const END_TEXT = 1;
const BEGIN_LINE = 2;
const END_LINE = 3;
const WORD_BOUNDARY = 4;
const NO_WORD_BOUNDARY = 5;

/** Facts every node carries, computed bottom-up as it is built so limits are checked without recursion. */
interface NodeFacts {
  readonly height: number;
  /** Instructions the compiler will emit for the node. */
  readonly size: number;
  /** Whether the node can match the empty string (a nullable x* is compiled as (x+)?, as Go does). */
  readonly nullable: boolean;
  /** Largest product of counted-repeat maxima along a path down from this node (Go limits it to 1000). */
  readonly repeatProduct: number;
}

type Node = NodeFacts &
  (
    | { readonly kind: 'empty' }
    | { readonly kind: 'char'; readonly matches: CharMatcher }
    | { readonly kind: 'assert'; readonly assertion: number }
    | { readonly kind: 'capture'; readonly index: number; readonly sub: Node }
    | { readonly kind: 'concat' | 'alternate'; readonly subs: readonly Node[] }
    | {
        readonly kind: 'repeat';
        readonly sub: Node;
        readonly min: number;
        /** -1: unbounded */
        readonly max: number;
        readonly greedy: boolean;
      }
  );

const EMPTY_NODE: Node = { kind: 'empty', height: 1, size: 0, nullable: true, repeatProduct: 0 };

function charNode(matches: CharMatcher): Node {
  return { kind: 'char', matches, height: 1, size: 1, nullable: false, repeatProduct: 0 };
}

function assertNode(assertion: number): Node {
  return { kind: 'assert', assertion, height: 1, size: 1, nullable: true, repeatProduct: 0 };
}

function captureNode(index: number, sub: Node): Node {
  return {
    kind: 'capture',
    index,
    sub,
    height: sub.height + 1,
    size: sub.size + 2,
    nullable: sub.nullable,
    repeatProduct: sub.repeatProduct,
  };
}

function listNode(kind: 'concat' | 'alternate', subs: readonly Node[]): Node {
  if (subs.length === 0) return EMPTY_NODE;
  if (subs.length === 1) return subs[0]!;
  let height = 0;
  let size = kind === 'alternate' ? 2 * (subs.length - 1) : 0; // a split and a jump per extra branch
  let repeatProduct = 0;
  for (const sub of subs) {
    height = Math.max(height, sub.height);
    size += sub.size;
    repeatProduct = Math.max(repeatProduct, sub.repeatProduct);
  }
  const nullable = kind === 'concat' ? subs.every((s) => s.nullable) : subs.some((s) => s.nullable);
  return { kind, subs, height: height + 1, size, nullable, repeatProduct };
}

function repeatNode(sub: Node, min: number, max: number, greedy: boolean, counted: boolean): Node {
  // Go expands x{n,m} as n copies of x then m-n nested optional copies, and x{n,} as n-1 copies then x+.
  let size: number;
  if (max < 0) size = min === 0 ? sub.size + 2 : min * sub.size + 1;
  else size = min * sub.size + (max - min) * (sub.size + 1);
  // Go refuses nested counted repeats whose counts multiply past 1000. It counts a repeat by its maximum (its
  // minimum when unbounded); x{0} can never match, so what it repeats no longer counts, while x{0,} counts as
  // what it repeats.
  let repeatProduct = sub.repeatProduct;
  if (counted && max === 0) repeatProduct = 0;
  else if (counted) {
    const factor = max < 0 ? min : max;
    if (factor > 0) repeatProduct = factor * Math.max(1, sub.repeatProduct);
  }
  return {
    kind: 'repeat',
    sub,
    min,
    max,
    greedy,
    height: sub.height + 1,
    size,
    nullable: min === 0 || sub.nullable,
    repeatProduct,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Parser: Go's Perl-flavoured syntax (regexp.Compile), left to right with an explicit stack of open groups,
// so deeply nested input cannot exhaust the JavaScript stack. Error fragments follow Go's.

interface Flags {
  readonly fold: boolean; // (?i)
  readonly multiLine: boolean; // (?m)
  readonly dotNL: boolean; // (?s)
  readonly ungreedy: boolean; // (?U)
}

type MutableFlags = { -readonly [K in keyof Flags]: boolean };
const FLAG_LETTERS: Readonly<Record<string, keyof Flags>> = {
  i: 'fold',
  m: 'multiLine',
  s: 'dotNL',
  U: 'ungreedy',
};
const ESCAPED_ASSERTIONS: Readonly<Record<string, number>> = {
  A: BEGIN_TEXT,
  z: END_TEXT,
  b: WORD_BOUNDARY,
  B: NO_WORD_BOUNDARY,
};
const C_ESCAPES: Readonly<Record<string, number>> = { a: 0x07, f: 0x0c, n: 0x0a, r: 0x0d, t: 0x09, v: 0x0b };

interface Frame {
  readonly alternatives: Node[];
  items: Node[];
  /** Flags to restore at the closing parenthesis: (?i) inside a group lasts until the group ends. */
  readonly savedFlags: Flags;
  /** Capture index, or 0 for a non-capturing group and the top level. */
  readonly capture: number;
}

interface Parsed {
  readonly root: Node;
  readonly names: readonly string[];
}

class Parser {
  private pos = 0;
  private flags: Flags = { fold: false, multiLine: false, dotNL: false, ungreedy: false };
  private readonly frames: Frame[] = [];
  private readonly names: string[] = [''];
  // Where the repetition operator just parsed began, or -1: Go rejects a** and a*+ as stacked operators.
  private lastRepeatStart = -1;
  // Every literal, class item, assertion and group as written counts toward MAX_PROGRAM_SIZE, so a huge
  // pattern is refused while it is read rather than after it is built (even content under x{0}, unlike Go).
  private written = 0;
  // Where the last ":]" is: past it no [:name:] can start, so a failed search is never repeated.
  private readonly lastColonBracket: number;

  constructor(private readonly src: string) {
    this.lastColonBracket = src.lastIndexOf(':]');
  }

  private error(code: string, expr: string): Re2SyntaxError {
    return new Re2SyntaxError(code, expr);
  }

  private get top(): Frame {
    return this.frames[this.frames.length - 1]!;
  }

  private countWritten(): void {
    if (++this.written > MAX_PROGRAM_SIZE) throw this.error(TOO_LARGE, this.src);
  }

  private push(node: Node): void {
    this.countWritten();
    this.top.items.push(node);
  }

  private pushLiteral(cp: number): void {
    this.push(charNode(literalMatcher(cp, this.flags.fold)));
  }

  private checked(node: Node): Node {
    if (node.height > MAX_NESTING_DEPTH) throw this.error(NESTING_DEPTH, this.src);
    if (node.size > MAX_PROGRAM_SIZE) throw this.error(TOO_LARGE, this.src);
    return node;
  }

  parse(): Parsed {
    const src = this.src;
    this.frames.push({ alternatives: [], items: [], savedFlags: this.flags, capture: 0 });
    while (this.pos < src.length) {
      const start = this.pos;
      let repeatStart = -1;
      const c = src[start];
      switch (c) {
        case '(':
          if (src[start + 1] === '?') {
            this.parseGroupPrefix(start);
          } else {
            this.names.push('');
            this.openGroup(this.names.length - 1, start + 1);
          }
          break;
        case '|':
          this.top.alternatives.push(this.checked(listNode('concat', this.top.items)));
          this.top.items = [];
          this.pos++;
          break;
        case ')':
          this.closeGroup();
          break;
        case '^':
          this.push(assertNode(this.flags.multiLine ? BEGIN_LINE : BEGIN_TEXT));
          this.pos++;
          break;
        case '$':
          // Without (?m), $ matches only at the very end: not before a final newline as in Perl and JS.
          this.push(assertNode(this.flags.multiLine ? END_LINE : END_TEXT));
          this.pos++;
          break;
        case '.':
          this.push(charNode(this.flags.dotNL ? anyChar : anyCharExceptNewline));
          this.pos++;
          break;
        case '[':
          this.parseClass(start);
          break;
        case '*':
        case '+':
        case '?':
          this.applyRepeat(start, start + 1, c === '+' ? 1 : 0, c === '?' ? 1 : -1, false);
          repeatStart = start;
          break;
        case '{': {
          const counts = this.parseRepeatCounts(start);
          if (!counts) {
            this.pushLiteral(0x7b); // a brace that does not form a repeat is a literal, as in Go
            this.pos = start + 1;
            break;
          }
          const { min, max, end } = counts;
          if (min < 0 || min > MAX_REPEAT_COUNT || max > MAX_REPEAT_COUNT || (max >= 0 && min > max)) {
            throw this.error(INVALID_REPEAT_SIZE, src.slice(start, end));
          }
          this.applyRepeat(start, end, min, max, true);
          repeatStart = start;
          break;
        }
        case '\\':
          this.parseBackslash(start);
          break;
        default: {
          const cp = src.codePointAt(start)!;
          this.pushLiteral(cp);
          this.pos = start + charWidth(cp);
        }
      }
      this.lastRepeatStart = repeatStart;
    }
    if (this.frames.length !== 1) throw this.error(MISSING_PAREN, src);
    return { root: this.finishFrame(this.top), names: this.names };
  }

  private openGroup(capture: number, contentStart: number): void {
    this.countWritten();
    this.frames.push({ alternatives: [], items: [], savedFlags: this.flags, capture });
    this.pos = contentStart;
  }

  private finishFrame(frame: Frame): Node {
    frame.alternatives.push(this.checked(listNode('concat', frame.items)));
    return this.checked(listNode('alternate', frame.alternatives));
  }

  private closeGroup(): void {
    if (this.frames.length === 1) throw this.error(UNEXPECTED_PAREN, this.src);
    const frame = this.frames.pop()!;
    let node = this.finishFrame(frame);
    if (frame.capture > 0) node = this.checked(captureNode(frame.capture, node));
    this.flags = frame.savedFlags;
    this.push(node);
    this.pos++;
  }

  // `(?` starts a named capture, a flag change `(?i-s)` or a non-capturing group `(?i:re)`.
  private parseGroupPrefix(start: number): void {
    const src = this.src;
    const remaining = src.length - start;
    const pythonName = remaining > 4 && src[start + 2] === 'P' && src[start + 3] === '<';
    // Go takes (?<...> as a name whatever follows, so lookbehind (?<=x) fails as an invalid named capture.
    if (pythonName || (remaining > 3 && src[start + 2] === '<')) {
      const close = src.indexOf('>', start);
      if (close < 0) throw this.error(INVALID_NAMED_CAPTURE, src.slice(start));
      const name = src.slice(start + (pythonName ? 4 : 3), close);
      if (name === '' || !Array.from(name, (ch) => ch.charCodeAt(0)).every(isAsciiWordUnit)) {
        throw this.error(INVALID_NAMED_CAPTURE, src.slice(start, close + 1));
      }
      // Go allows a name to repeat; SubexpNames then lists it twice.
      this.names.push(name);
      this.openGroup(this.names.length - 1, close + 1);
      return;
    }
    const flags: MutableFlags = { ...this.flags };
    let negate = false;
    let sawFlag = false;
    let p = start + 2;
    while (p < src.length) {
      const c = src.codePointAt(p)!;
      p += charWidth(c);
      const ch = String.fromCodePoint(c);
      const flag = FLAG_LETTERS[ch];
      if (flag) {
        flags[flag] = !negate;
        sawFlag = true;
        continue;
      }
      if (ch === '-' && !negate) {
        negate = true;
        sawFlag = false;
        continue;
      }
      if ((ch === ':' || ch === ')') && !(negate && !sawFlag)) {
        if (ch === ':') this.openGroup(0, p);
        else this.pos = p;
        this.flags = flags;
        return;
      }
      break; // (?=, (?!, (?P=, (?#, (?x, (?i-) ...
    }
    throw this.error(INVALID_PERL_OP, src.slice(start, p));
  }

  private applyRepeat(opStart: number, opEnd: number, min: number, max: number, counted: boolean): void {
    let end = opEnd;
    let greedy = !this.flags.ungreedy;
    if (this.src[end] === '?') {
      end++;
      greedy = !greedy;
    }
    if (this.lastRepeatStart >= 0) {
      throw this.error(INVALID_REPEAT_OP, this.src.slice(this.lastRepeatStart, end));
    }
    // After `(`, `|` or at the start there is nothing to repeat (a flag group such as (?i) pushes nothing).
    const sub = this.top.items.pop();
    if (!sub) throw this.error(MISSING_REPEAT_ARGUMENT, this.src.slice(opStart, end));
    // Size first, then the nested counts, in Go's order: (x{1000}){1000} is too large before it is a bad count.
    const node = this.checked(repeatNode(sub, min, max, greedy, counted));
    if (counted && (min >= 2 || max >= 2) && node.repeatProduct > MAX_REPEAT_COUNT) {
      throw this.error(INVALID_REPEAT_SIZE, this.src.slice(opStart, end));
    }
    this.push(node);
    this.pos = end;
  }

  /** `{n}`, `{n,}` or `{n,m}` at `start`; undefined when the brace does not form one (it is then a literal). */
  private parseRepeatCounts(start: number): { min: number; max: number; end: number } | undefined {
    const src = this.src;
    const first = this.parseDecimal(start + 1);
    if (!first) return undefined;
    let min = first.value;
    let max = min;
    let p = first.end;
    if (src[p] === ',') {
      p++;
      if (src[p] === '}') {
        max = -1;
      } else {
        const second = this.parseDecimal(p);
        if (!second) return undefined;
        max = second.value;
        p = second.end;
        if (max < 0) min = -1; // too big: reported as an invalid count
      }
    }
    if (src[p] !== '}') return undefined;
    return { min, max, end: p + 1 };
  }

  // Go rejects leading zeros (so `a{01}` is literal text) and turns very large numbers into -1.
  private parseDecimal(p: number): { value: number; end: number } | undefined {
    const src = this.src;
    const isDigit = (i: number) => src[i] !== undefined && src[i]! >= '0' && src[i]! <= '9';
    if (!isDigit(p) || (src[p] === '0' && isDigit(p + 1))) return undefined;
    let value = 0;
    let q = p;
    for (; isDigit(q); q++) {
      if (value >= 1e8) value = -1;
      else if (value >= 0) value = value * 10 + (src.charCodeAt(q) - 0x30);
    }
    return { value, end: q };
  }

  private parseBackslash(start: number): void {
    const src = this.src;
    const next = src[start + 1];
    const assertion = next === undefined ? undefined : ESCAPED_ASSERTIONS[next];
    if (assertion !== undefined) {
      this.push(assertNode(assertion));
      this.pos = start + 2;
      return;
    }
    if (next === 'C') throw this.error(INVALID_ESCAPE, '\\C'); // any byte: not supported, as in Go
    if (next === 'Q') {
      // \Q...\E: everything up to \E (or the end) is literal text.
      const close = src.indexOf('\\E', start + 2);
      for (const ch of close < 0 ? src.slice(start + 2) : src.slice(start + 2, close)) {
        this.pushLiteral(ch.codePointAt(0)!);
      }
      this.pos = close < 0 ? src.length : close + 2;
      return;
    }
    if (next === 'p' || next === 'P') {
      const builder = new ClassBuilder();
      this.pos = this.parseUnicodeClass(start, builder);
      this.push(charNode(builder.build(false, this.flags.fold)));
      return;
    }
    const perl = next === undefined ? undefined : PERL_GROUPS[next];
    if (perl) {
      const builder = new ClassBuilder();
      builder.addGroup(perl);
      this.push(charNode(builder.build(false, this.flags.fold)));
      this.pos = start + 2;
      return;
    }
    const escape = this.parseEscape(start);
    this.pushLiteral(escape.cp);
    this.pos = escape.end;
  }

  /** A single-character escape at `start` (a backslash): \n, \x{263a}, \123, \. and so on. */
  private parseEscape(start: number): { cp: number; end: number } {
    const src = this.src;
    let p = start + 1;
    if (p >= src.length) throw this.error(TRAILING_BACKSLASH, '');
    const c = src.codePointAt(p)!;
    p += charWidth(c);
    const invalid = () => this.error(INVALID_ESCAPE, src.slice(start, p));
    const octalAt = (i: number) => src[i] !== undefined && src[i]! >= '0' && src[i]! <= '7';
    // Escaped ASCII punctuation (and `_`) is always itself.
    if (c < 0x80 && !isAsciiAlnum(c)) return { cp: c, end: p };
    // Octal: \0 and up to two more digits; \1..\7 only with a second digit (alone it would be a
    // backreference, which RE2 does not support), so \12 is octal.
    if (c === 0x30 || (c >= 0x31 && c <= 0x37 && octalAt(p))) {
      let value = c - 0x30;
      for (let digits = 1; digits < 3 && octalAt(p); digits++, p++)
        value = value * 8 + (src.charCodeAt(p) - 0x30);
      return { cp: value, end: p };
    }
    const simple = C_ESCAPES[String.fromCodePoint(c)];
    if (simple !== undefined) return { cp: simple, end: p };
    if (c !== 0x78) throw invalid();
    // \x7F, or \x{10FFFF} with one or more hex digits.
    if (p >= src.length) throw invalid();
    const d = src.codePointAt(p)!;
    p += charWidth(d);
    if (d !== 0x7b) {
      let low = -1;
      if (p < src.length) {
        const e = src.codePointAt(p)!;
        p += charWidth(e);
        low = hexValue(e);
      }
      const high = hexValue(d);
      if (high < 0 || low < 0) throw invalid();
      return { cp: high * 16 + low, end: p };
    }
    let value = 0;
    for (let digits = 0; ; digits++) {
      if (p >= src.length) throw invalid();
      const h = src.codePointAt(p)!;
      p += charWidth(h);
      if (h === 0x7d && digits > 0) return { cp: value, end: p };
      const v = hexValue(h);
      if (v < 0) throw invalid();
      value = value * 16 + v;
      if (value > MAX_CODE_POINT) throw invalid();
    }
  }

  /** \pL, \p{Greek}, \P{Lu}, \p{^Greek} at `start`; returns where it ends. */
  private parseUnicodeClass(start: number, builder: ClassBuilder): number {
    const src = this.src;
    let negated = src[start + 1] === 'P';
    let end: number;
    let name: string;
    if (src[start + 2] === '{') {
      const close = src.indexOf('}', start);
      if (close < 0) throw this.error(INVALID_CHAR_RANGE, src.slice(start));
      end = close + 1;
      name = src.slice(start + 3, close);
    } else {
      const cp = src.codePointAt(start + 2);
      end = cp === undefined ? start + 2 : start + 2 + charWidth(cp);
      name = src.slice(start + 2, end);
    }
    if (name.startsWith('^')) {
      negated = !negated;
      name = name.slice(1);
    }
    const test = unicodeClassTester(name);
    if (!test) throw this.error(INVALID_CHAR_RANGE, src.slice(start, end));
    builder.addUnicode(test, negated);
    return end;
  }

  private parseClass(start: number): void {
    const src = this.src;
    const builder = new ClassBuilder();
    let p = start + 1;
    let negated = false;
    if (src[p] === '^') {
      negated = true;
      p++;
    }
    // `]` right after `[` or `[^` is a literal; `-` is literal where it cannot form a range.
    for (let first = true; p >= src.length || src[p] !== ']' || first; first = false) {
      this.countWritten();
      if (src[p] === '[' && src[p + 1] === ':' && p + 2 < src.length && p + 2 <= this.lastColonBracket) {
        const close = src.indexOf(':]', p + 2);
        const name = src.slice(p, close + 2);
        const posix = POSIX_GROUPS.get(name);
        if (!posix) throw this.error(INVALID_CHAR_RANGE, name);
        builder.addGroup(posix);
        p = close + 2;
        continue;
      }
      if (src[p] === '\\' && (src[p + 1] === 'p' || src[p + 1] === 'P')) {
        p = this.parseUnicodeClass(p, builder);
        continue;
      }
      const perl = src[p] === '\\' && src[p + 1] !== undefined ? PERL_GROUPS[src[p + 1]!] : undefined;
      if (perl) {
        builder.addGroup(perl);
        p += 2;
        continue;
      }
      const rangeStart = p;
      const lo = this.parseClassChar(p, start);
      let hi = lo;
      p = lo.end;
      if (src[p] === '-' && p + 1 < src.length && src[p + 1] !== ']') {
        hi = this.parseClassChar(p + 1, start);
        p = hi.end;
        if (hi.cp < lo.cp) throw this.error(INVALID_CHAR_RANGE, src.slice(rangeStart, p));
      }
      builder.addRange(lo.cp, hi.cp);
    }
    this.push(charNode(builder.build(negated, this.flags.fold)));
    this.pos = p + 1;
  }

  private parseClassChar(p: number, classStart: number): { cp: number; end: number } {
    const src = this.src;
    if (p >= src.length) throw this.error(MISSING_BRACKET, src.slice(classStart));
    if (src[p] === '\\') return this.parseEscape(p);
    const cp = src.codePointAt(p)!;
    return { cp, end: p + charWidth(cp) };
  }
}

function hexValue(cp: number): number {
  if (cp >= 0x30 && cp <= 0x39) return cp - 0x30;
  if (cp >= 0x41 && cp <= 0x46) return cp - 0x41 + 10;
  if (cp >= 0x61 && cp <= 0x66) return cp - 0x61 + 10;
  return -1;
}

// ---------------------------------------------------------------------------------------------------------
// Compiler: AST → instruction program. Slots 0 and 1 hold the whole match; group n uses 2n and 2n+1.

const OP_CHAR = 0; // consume one code point if `matches` accepts it, then go to `out`
const OP_MATCH = 1;
const OP_SPLIT = 2; // try `out` first, then `arg` (leftmost-first priority)
const OP_JUMP = 3;
const OP_SAVE = 4; // record the position in slot `arg`
const OP_ASSERT = 5; // empty-width assertion `arg`

interface Inst {
  readonly op: number;
  out: number;
  arg: number;
  readonly matches: CharMatcher;
}

interface Program {
  readonly insts: readonly Inst[];
  /** The program can only match at position 0 (it begins with \A or ^ without (?m)). */
  readonly anchoredStart: boolean;
}

const NEVER: CharMatcher = () => false;

class Compiler {
  readonly insts: Inst[] = [];

  private emit(op: number, out = -1, arg = -1, matches: CharMatcher = NEVER): number {
    this.insts.push({ op, out, arg, matches });
    return this.insts.length - 1;
  }

  private get next(): number {
    return this.insts.length;
  }

  /** Points the split at `pc` to `body` and `exit`, preferring `body` when greedy and `exit` when not. */
  private setSplit(pc: number, greedy: boolean, body: number, exit: number): void {
    const split = this.insts[pc]!;
    split.out = greedy ? body : exit;
    split.arg = greedy ? exit : body;
  }

  program(root: Node): Program {
    this.emit(OP_SAVE, 1, 0);
    this.compile(root);
    this.emit(OP_SAVE, this.next + 1, 1);
    this.emit(OP_MATCH);
    return { insts: this.insts, anchoredStart: startsAnchored(this.insts) };
  }

  private compile(node: Node): void {
    switch (node.kind) {
      case 'empty':
        return;
      case 'char':
        this.emit(OP_CHAR, this.next + 1, -1, node.matches);
        return;
      case 'assert':
        this.emit(OP_ASSERT, this.next + 1, node.assertion);
        return;
      case 'capture':
        this.emit(OP_SAVE, this.next + 1, 2 * node.index);
        this.compile(node.sub);
        this.emit(OP_SAVE, this.next + 1, 2 * node.index + 1);
        return;
      case 'concat':
        for (const sub of node.subs) this.compile(sub);
        return;
      case 'alternate': {
        const jumps: number[] = [];
        node.subs.forEach((sub, i) => {
          if (i === node.subs.length - 1) {
            this.compile(sub);
            return;
          }
          const split = this.emit(OP_SPLIT, this.next + 1);
          this.compile(sub);
          jumps.push(this.emit(OP_JUMP));
          this.insts[split]!.arg = this.next;
        });
        for (const jump of jumps) this.insts[jump]!.out = this.next;
        return;
      }
      case 'repeat':
        this.repeat(node.sub, node.min, node.max, node.greedy);
        return;
    }
  }

  private repeat(sub: Node, min: number, max: number, greedy: boolean): void {
    if (max < 0) {
      if (min === 0) return this.star(sub, greedy);
      for (let i = 1; i < min; i++) this.compile(sub);
      return this.plus(sub, greedy);
    }
    for (let i = 0; i < min; i++) this.compile(sub);
    // x{n,m}: the m-n optional copies nest, (x(x(x)?)?)?, so every split exits to the same place.
    const splits: number[] = [];
    for (let i = min; i < max; i++) {
      splits.push(this.emit(OP_SPLIT));
      this.compile(sub);
    }
    for (const split of splits) this.setSplit(split, greedy, split + 1, this.next);
  }

  private star(sub: Node, greedy: boolean): void {
    if (sub.nullable) {
      // As Go does (golang.org/issue/46123): x* with an x that can match empty is (x+)?, which gives
      // submatches the priority Perl's semantics expect, e.g. (|a)* prefers the empty first branch.
      const split = this.emit(OP_SPLIT);
      this.plus(sub, greedy);
      this.setSplit(split, greedy, split + 1, this.next);
      return;
    }
    const loop = this.emit(OP_SPLIT);
    this.compile(sub);
    this.emit(OP_JUMP, loop);
    this.setSplit(loop, greedy, loop + 1, this.next);
  }

  private plus(sub: Node, greedy: boolean): void {
    const body = this.next;
    this.compile(sub);
    const split = this.emit(OP_SPLIT);
    this.setSplit(split, greedy, body, split + 1);
  }
}

function startsAnchored(insts: readonly Inst[]): boolean {
  // Follow the empty-width chain from the start (saves and assertions) looking for a begin-of-text test.
  for (let pc = 0, guard = 0; guard < insts.length; guard++) {
    const inst = insts[pc]!;
    if (inst.op === OP_ASSERT && inst.arg === BEGIN_TEXT) return true;
    if (inst.op !== OP_SAVE && inst.op !== OP_ASSERT) return false;
    pc = inst.out;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Pike VM. Threads live in two queues (the current position and the next one), each holding at most one
// thread per instruction; a generation stamp per instruction makes "already queued here" O(1) without
// clearing. Capture arrays are shared between threads and copied only when a thread saves a position.

/** A thread's slots; treated as immutable once queued. */
type Slots = readonly number[];

class ThreadQueue {
  readonly pcs: Int32Array;
  readonly slots: Slots[];
  size = 0;
  generation = 0;
  constructor(capacity: number) {
    this.pcs = new Int32Array(capacity);
    this.slots = new Array<Slots>(capacity);
  }
}

function assertionHolds(assertion: number, input: string, pos: number): boolean {
  const before = pos > 0 ? input.charCodeAt(pos - 1) : -1;
  const after = pos < input.length ? input.charCodeAt(pos) : -1;
  switch (assertion) {
    case BEGIN_TEXT:
      return pos === 0;
    case END_TEXT:
      return pos === input.length;
    case BEGIN_LINE:
      return pos === 0 || before === 0x0a;
    case END_LINE:
      return pos === input.length || after === 0x0a;
    case WORD_BOUNDARY:
      return isAsciiWordUnit(before) !== isAsciiWordUnit(after);
    default:
      return isAsciiWordUnit(before) === isAsciiWordUnit(after);
  }
}

class Machine {
  private readonly run: ThreadQueue;
  private readonly next: ThreadQueue;
  /** Generation in which each instruction was last visited. */
  private readonly visited: Uint32Array;
  private generation = 0;
  private readonly stackPcs: number[] = [];
  private readonly stackSlots: Slots[] = [];

  constructor(private readonly program: Program) {
    const size = program.insts.length;
    this.run = new ThreadQueue(size);
    this.next = new ThreadQueue(size);
    this.visited = new Uint32Array(size);
  }

  // Threads are only ever added to the queue started last, so when the stamps run out (a long-lived
  // regexp can take 2^32 steps) clearing them all is safe.
  private startQueue(queue: ThreadQueue): void {
    if (this.generation === 0xffffffff) {
      this.visited.fill(0);
      this.generation = 0;
    }
    queue.size = 0;
    queue.generation = ++this.generation;
  }

  /**
   * Leftmost-first search of `input` from `from`, recording `slotCount` capture slots (0: only whether
   * there is a match). Returns the winning thread's slots, or undefined.
   */
  execute(input: string, from: number, slotCount: number, meter: StepMeter | undefined): Slots | undefined {
    const { insts, anchoredStart } = this.program;
    if (anchoredStart && from > 0) return undefined;
    let run = this.run;
    let next = this.next;
    this.startQueue(run);
    this.stackPcs.length = 0;
    this.stackSlots.length = 0;
    const noSlots: Slots = new Array<number>(slotCount).fill(-1);
    let matched: Slots | undefined;
    let pending = 0;
    try {
      for (let pos = from; ;) {
        if (run.size === 0 && (matched || (anchoredStart && pos > 0))) break;
        // A new thread starts at each position until a match is found; it ranks below every older one.
        if (!matched && (!anchoredStart || pos === 0)) pending += this.addThread(run, 0, pos, noSlots, input);
        const cp = pos < input.length ? input.codePointAt(pos)! : -1;
        const width = cp < 0 ? 0 : charWidth(cp);
        this.startQueue(next);
        for (let i = 0; i < run.size; i++) {
          const inst = insts[run.pcs[i]!]!;
          if (inst.op === OP_MATCH) {
            if (slotCount === 0) return noSlots;
            // Leftmost-first: this thread outranks everything after it in the queue, so drop those.
            matched = run.slots[i]!;
            break;
          }
          if (cp >= 0 && inst.matches(cp))
            pending += this.addThread(next, inst.out, pos + width, run.slots[i]!, input);
        }
        if (pending >= STEP_CHARGE_BATCH) {
          const batch = pending;
          pending = 0; // not charged again on the way out if the meter throws
          meter?.charge(batch);
        }
        if (width === 0) break;
        pos += width;
        const stepped = run;
        run = next;
        next = stepped;
      }
    } finally {
      if (pending > 0) meter?.charge(pending);
    }
    return matched;
  }

  /**
   * Adds the thread at `pc0` to `queue`, following jumps, splits (in priority order), saves and assertions
   * at `pos` iteratively. Each instruction is visited at most once per queue; returns how many were visited.
   */
  private addThread(queue: ThreadQueue, pc0: number, pos: number, slots0: Slots, input: string): number {
    const insts = this.program.insts;
    const visited = this.visited;
    const stackPcs = this.stackPcs;
    const stackSlots = this.stackSlots;
    let steps = 0;
    stackPcs.push(pc0);
    stackSlots.push(slots0);
    while (stackPcs.length > 0) {
      let pc = stackPcs.pop()!;
      let slots = stackSlots.pop()!;
      for (;;) {
        if (visited[pc] === queue.generation) break;
        visited[pc] = queue.generation;
        steps++;
        const inst = insts[pc]!;
        if (inst.op === OP_JUMP) {
          pc = inst.out;
        } else if (inst.op === OP_SPLIT) {
          stackPcs.push(inst.arg);
          stackSlots.push(slots);
          pc = inst.out;
        } else if (inst.op === OP_SAVE) {
          if (inst.arg < slots.length) {
            const copy = slots.slice();
            copy[inst.arg] = pos;
            slots = copy;
          }
          pc = inst.out;
        } else if (inst.op === OP_ASSERT) {
          if (!assertionHolds(inst.arg, input, pos)) break;
          pc = inst.out;
        } else {
          queue.pcs[queue.size] = pc;
          queue.slots[queue.size] = slots;
          queue.size++;
          break;
        }
      }
    }
    return steps;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The Re2 API (Go's regexp.Regexp string methods)

export interface Re2 {
  readonly source: string;
  readonly numSubexp: number;
  /** Index 0 is ''; unnamed groups are ''. */
  readonly subexpNames: readonly string[];
  /** Instructions in the compiled program: a search costs at most programSize × (input length + 1) steps. */
  readonly programSize: number;
  matchString(s: string, meter?: StepMeter): boolean;
  /** '' when there is no match (as Go). */
  findString(s: string, meter?: StepMeter): string;
  findStringIndex(s: string, meter?: StepMeter): [number, number] | undefined;
  /** undefined entries for groups that did not participate. */
  findStringSubmatch(s: string, meter?: StepMeter): (string | undefined)[] | undefined;
  /** n < 0: all matches; undefined (Go's nil) when there are none or n == 0. */
  findAllString(s: string, n: number, meter?: StepMeter): string[] | undefined;
  /** Replaces every match, expanding $1, ${1}, $name, ${name} and $$ in `repl` (Go's Expand). */
  replaceAllString(src: string, repl: string, meter?: StepMeter): string;
  replaceAllLiteralString(src: string, repl: string, meter?: StepMeter): string;
  /** Go's Regexp.Split: n > 0 at most n pieces, the last the unsplit rest; n == 0 undefined (nil); n < 0 all. */
  split(s: string, n: number, meter?: StepMeter): string[] | undefined;
}

/** Compiles a pattern as Go's regexp.Compile does (Perl syntax, leftmost-first matching). */
export function compileRe2(pattern: string): Re2 {
  const { root, names } = new Parser(pattern).parse();
  if (root.size + 3 > MAX_PROGRAM_SIZE) throw new Re2SyntaxError(TOO_LARGE, pattern);
  return new CompiledRe2(pattern, names, new Compiler().program(root));
}

const META_CHARACTERS = new Set('\\.+*?()|[]{}^$');

/** Go's regexp.QuoteMeta: escapes every metacharacter so the result matches `s` literally. */
export function quoteMeta(s: string): string {
  let out = '';
  for (const ch of s) out += META_CHARACTERS.has(ch) ? `\\${ch}` : ch;
  return out;
}

const EXPAND_NAME_CHAR = /^[\p{L}\p{Nd}_]$/u;

class CompiledRe2 implements Re2 {
  readonly numSubexp: number;
  readonly programSize: number;
  private machine: Machine | undefined;
  private machineInUse = false;

  constructor(
    readonly source: string,
    readonly subexpNames: readonly string[],
    private readonly program: Program,
  ) {
    this.numSubexp = subexpNames.length - 1;
    this.programSize = program.insts.length;
  }

  private execute(input: string, from: number, slotCount: number, meter?: StepMeter): Slots | undefined {
    // One machine is reused across calls; a meter that re-enters this regexp gets a fresh one.
    if (this.machineInUse) return new Machine(this.program).execute(input, from, slotCount, meter);
    this.machine ??= new Machine(this.program);
    this.machineInUse = true;
    try {
      return this.machine.execute(input, from, slotCount, meter);
    } finally {
      this.machineInUse = false;
    }
  }

  private get allSlots(): number {
    return 2 * (this.numSubexp + 1);
  }

  matchString(s: string, meter?: StepMeter): boolean {
    return this.execute(s, 0, 0, meter) !== undefined;
  }

  findString(s: string, meter?: StepMeter): string {
    const m = this.execute(s, 0, 2, meter);
    return m ? s.slice(m[0], m[1]) : '';
  }

  findStringIndex(s: string, meter?: StepMeter): [number, number] | undefined {
    const m = this.execute(s, 0, 2, meter);
    return m ? [m[0]!, m[1]!] : undefined;
  }

  findStringSubmatch(s: string, meter?: StepMeter): (string | undefined)[] | undefined {
    const m = this.execute(s, 0, this.allSlots, meter);
    return m ? submatches(s, m) : undefined;
  }

  findAllString(s: string, n: number, meter?: StepMeter): string[] | undefined {
    const found = this.allMatches(s, n, 2, meter);
    return found.length > 0 ? found.map((m) => s.slice(m[0], m[1])) : undefined;
  }

  // Go's allMatches: after a match, search again from its end (or one character on, if it was empty);
  // an empty match right where the previous match ended is skipped.
  private allMatches(s: string, n: number, slotCount: number, meter?: StepMeter): Slots[] {
    const limit = n < 0 ? s.length + 1 : n;
    const found: Slots[] = [];
    for (let pos = 0, prevMatchEnd = -1; found.length < limit && pos <= s.length;) {
      const m = this.execute(s, pos, slotCount, meter);
      if (!m) break;
      let accept = true;
      if (m[1] === pos) {
        if (m[0] === prevMatchEnd) accept = false;
        pos += pos < s.length ? charWidth(s.codePointAt(pos)!) : 1;
      } else {
        pos = m[1]!;
      }
      prevMatchEnd = m[1]!;
      if (accept) found.push(m);
    }
    return found;
  }

  replaceAllString(src: string, repl: string, meter?: StepMeter): string {
    const slotCount = repl.includes('$') ? this.allSlots : 2;
    return this.replaceAll(src, slotCount, meter, (m) => this.expand(repl, src, m));
  }

  replaceAllLiteralString(src: string, repl: string, meter?: StepMeter): string {
    return this.replaceAll(src, 2, meter, () => repl);
  }

  // Go's replaceAll: an empty match right after the previous match is not replaced (so `x*` on "abc"
  // gives "-a-b-c-"), and the search always advances by at least one character. The replacements are charged
  // to the meter by length too: a replacement per position can make the result far larger than `src`, and the
  // meter is what bounds a call before its result exists.
  private replaceAll(
    src: string,
    slotCount: number,
    meter: StepMeter | undefined,
    repl: (m: Slots) => string,
  ) {
    let out = '';
    let lastMatchEnd = 0;
    for (let searchPos = 0; searchPos <= src.length;) {
      const m = this.execute(src, searchPos, slotCount, meter);
      if (!m) break;
      const [start, end] = [m[0]!, m[1]!];
      out += src.slice(lastMatchEnd, start);
      if (end > lastMatchEnd || start === 0) {
        const replacement = repl(m);
        meter?.charge(replacement.length);
        out += replacement;
      }
      lastMatchEnd = end;
      const width = searchPos < src.length ? charWidth(src.codePointAt(searchPos)!) : 0;
      if (searchPos + width > end) searchPos += width;
      else if (searchPos + 1 > end) searchPos++;
      else searchPos = end;
    }
    return out + src.slice(lastMatchEnd);
  }

  // Go's Regexp.Expand: $name is the longest run of letters, digits and `_`, so $1W names group "1W";
  // ${name} delimits it; $$ is `$`; a malformed reference is kept as text; an unknown or unmatched group
  // expands to ''. With repeated names, the first group of that name that matched wins.
  private expand(template: string, src: string, m: Slots): string {
    let out = '';
    let i = 0;
    for (let dollar = template.indexOf('$'); dollar >= 0; dollar = template.indexOf('$', i)) {
      out += template.slice(i, dollar);
      i = dollar + 1;
      if (template[i] === '$') {
        out += '$';
        i++;
        continue;
      }
      const ref = extractReference(template, i);
      if (!ref) {
        out += '$';
        continue;
      }
      i = ref.end;
      const group =
        ref.num >= 0 ? ref.num : this.subexpNames.findIndex((name, g) => name === ref.name && m[2 * g]! >= 0);
      if (group >= 0 && 2 * group + 1 < m.length && m[2 * group]! >= 0) {
        out += src.slice(m[2 * group], m[2 * group + 1]);
      }
    }
    return out + template.slice(i);
  }

  split(s: string, n: number, meter?: StepMeter): string[] | undefined {
    if (n === 0) return undefined;
    if (this.source.length > 0 && s.length === 0) return [''];
    const pieces: string[] = [];
    let beg = 0;
    let end = 0;
    for (const m of this.allMatches(s, n, 2, meter)) {
      if (n > 0 && pieces.length === n - 1) break;
      end = m[0]!;
      if (m[1] !== 0) pieces.push(s.slice(beg, end));
      beg = m[1]!;
    }
    if (end !== s.length) pieces.push(s.slice(beg));
    return pieces;
  }
}

function submatches(s: string, m: Slots): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (let i = 0; i < m.length; i += 2) out.push(m[i]! >= 0 ? s.slice(m[i], m[i + 1]) : undefined);
  return out;
}

/** The `name` or `{name}` reference at `start` (just after a `$`): its name, its number or -1, and its end. */
function extractReference(
  text: string,
  start: number,
): { name: string; num: number; end: number } | undefined {
  const braced = text[start] === '{';
  const nameStart = braced ? start + 1 : start;
  let i = nameStart;
  while (i < text.length) {
    const cp = text.codePointAt(i)!;
    if (!EXPAND_NAME_CHAR.test(String.fromCodePoint(cp))) break;
    i += charWidth(cp);
  }
  const name = text.slice(nameStart, i);
  if (name === '') return undefined;
  if (braced) {
    if (text[i] !== '}') return undefined;
    i++;
  }
  let num = 0;
  for (const ch of name) {
    if (ch < '0' || ch > '9' || num >= 1e8) {
      num = -1;
      break;
    }
    num = num * 10 + (ch.charCodeAt(0) - 0x30);
  }
  if (name.length > 1 && name.startsWith('0')) num = -1; // no leading zeros: $01 is the name "01"
  return { name, num, end: i };
}
