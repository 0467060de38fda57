// Compares meshrev's Go regexp engine (src/injector/engine/go-template/re2.ts, behind custom templates' regex
// functions) with Go's own regexp package on random patterns and inputs: every answer, syntax errors included,
// must be Go's. Not a test (it needs Go); run it after changing re2.ts. From the repository root:
//   make differential [DIFFERENTIAL_ARGS="--cases 20000 --seed 7"]
// which builds hack/differential (Go, standard library only) and runs node dist/hack/differential/regexp.js <binary>.
import { compileRe2 } from '../../src/injector/engine/go-template/re2.js';
import { askGo, goBinaryArgument, option, random } from './common.js';

interface RegexpCase {
  pattern: string;
  input: string;
  replacement: string;
  n: number;
}

/** What the Go side prints for a case (hack/differential/main.go); the same fields are filled in here. */
interface RegexpResult {
  error?: string;
  match?: boolean;
  find?: string;
  submatch?: (string | null)[] | null;
  findAll?: string[] | null;
  replace?: string;
  replaceLiteral?: string;
  split?: string[] | null;
}

// Atoms cover literals (astral and case-folding ones too), classes of every kind, anchors and escapes; the last
// ones do not compile and check Go's error messages. Inputs are short so that every branch is reached often.
const VALID_ATOMS = [
  'a',
  'b',
  'x',
  'A',
  'K',
  'k',
  's',
  'ſ',
  'é',
  '😀',
  '.',
  '-',
  '\\.',
  '\\n',
  '\\x41',
  '\\Qa.\\E',
  '[ab]',
  '[^a]',
  '[a-c]',
  '[k-m]',
  '[[:alpha:]]',
  '[[:^digit:]]',
  '[\\d-]',
  '[a\\-z]',
  '\\d',
  '\\w',
  '\\s',
  '\\S',
  '\\pL',
  '\\PL',
  '\\p{Greek}',
  '\\b',
  '\\B',
  '^',
  '$',
  '\\A',
  '\\z',
  '[\\p{Greek}\\d]',
  '[^\\s\\pL]',
  '[[:upper:][:digit:]]',
  '[[:word:]]',
  '[[:punct:]]',
  '[[:space:]]',
  '(?i:[a-c])',
  '(?i)[k-m]',
  '\\0',
  '\\101',
  '\\x{1F600}',
  '\\p{Lu}',
  '\\pN',
  '\\p{Han}',
  '\\P{Ll}',
  '[\\x{0}-\\x{7f}]',
  '(?:)',
  '(|a)',
  '(?<n>x)',
  '(?i-s:.)',
  '(?s:.)',
  '(?m:$)',
  '\\Q*\\E',
  '[\\Q]\\E]',
  '[-a]',
  '[]a]',
  'x{2}{3}',
  '\\f',
  '\\v',
  '\\t',
  '[\\x41-\\x43]',
  'a{,3}',
  '{',
  'a{2,1}',
];
const INVALID_ATOMS = [
  '\\',
  '(',
  ')',
  '[',
  '*',
  'x{',
  '\\1',
  '(?=a)',
  '(?<=a)',
  '(?!a)',
  '[z-a]',
  '(?P<>a)',
  '(?P<1a>x)',
  '\\C',
  '\\Z',
  'a**',
  'a{1001}',
  '\\p{Nope}',
  '[[:nope:]]',
  '\\x{110000}',
  '(?z)',
  '\\8',
];
const QUANTIFIERS = [
  '',
  '',
  '',
  '*',
  '+',
  '?',
  '*?',
  '+?',
  '??',
  '{2}',
  '{1,3}',
  '{0,}',
  '{2,}?',
  '{0}',
  '{1000}',
];
const FLAGS = ['(?i)', '(?m)', '(?s)', '(?U)', '(?-i)', '(?im)', '(?i-m)', '(?sU)'];
const INPUT_PIECES = [
  'a',
  'b',
  'x',
  'A',
  'K',
  'k',
  'K',
  's',
  'ſ',
  'é',
  'αβ',
  '😀',
  '-',
  '\n',
  ' ',
  '1',
  '.',
  'ab',
  'xx',
];
const REPLACEMENTS = ['-', '$1', '${1}x', '$g0', '[$0]', '$$', '$1W', ''];

function generateCases(count: number, seed: number): RegexpCase[] {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const pattern = (depth: number): string => {
    let text = '';
    for (let i = 0, atoms = 1 + Math.floor(next() * 4); i < atoms; i++) {
      let atom: string;
      if (depth < 3 && next() < 0.25) {
        const open = pick(['(', '(?:', `(?P<g${i}>`, '(?i:']);
        atom = `${open}${pattern(depth + 1)}${next() < 0.3 ? `|${pattern(depth + 1)}` : ''})`;
      } else {
        atom = next() < 0.97 ? pick(VALID_ATOMS) : pick(INVALID_ATOMS);
      }
      text += atom + pick(QUANTIFIERS);
    }
    if (next() < 0.2) text = pick(FLAGS) + text;
    if (next() < 0.15) text += `|${pattern(depth + 1)}`;
    return text;
  };
  return Array.from({ length: count }, () => ({
    pattern: pattern(0),
    input: Array.from({ length: Math.floor(next() * 12) }, () => pick(INPUT_PIECES)).join(''),
    replacement: pick(REPLACEMENTS),
    n: pick([-1, -1, 0, 1, 2, 3]),
  }));
}

function meshrevAnswer(c: RegexpCase): RegexpResult {
  try {
    const re = compileRe2(c.pattern);
    return {
      match: re.matchString(c.input),
      find: re.findString(c.input),
      submatch: re.findStringSubmatch(c.input)?.map((group) => group ?? null) ?? null,
      findAll: re.findAllString(c.input, c.n) ?? null,
      replace: re.replaceAllString(c.input, c.replacement),
      replaceLiteral: re.replaceAllLiteralString(c.input, c.replacement),
      split: re.split(c.input, c.n) ?? null,
    };
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
}

const goBinary = goBinaryArgument('regexp');
const seed = option('--seed', 1);
const cases = generateCases(option('--cases', 10_000), seed);
const answers = askGo<RegexpResult>(goBinary, [], cases);

let mismatches = 0;
let tooLarge = 0;
let errors = 0;
let matched = 0;
cases.forEach((c, i) => {
  const expected = answers[i] ?? {};
  if (expected.error !== undefined) errors++;
  if (expected.match === true) matched++;
  const actual = meshrevAnswer(c);
  const want = expected.error !== undefined ? { error: expected.error } : expected;
  if (JSON.stringify(actual) === JSON.stringify(want)) return;
  // meshrev refuses programs over 10,000 instructions, far below Go's bound, and may do so before it reaches an
  // error Go reports further on in the same pattern: a documented difference.
  if (actual.error?.includes(': expression too large: ') === true) {
    tooLarge++;
    return;
  }
  if (++mismatches <= 20) {
    console.log(
      `mismatch: ${JSON.stringify(c)}\n  go:      ${JSON.stringify(want)}\n  meshrev: ${JSON.stringify(actual)}`,
    );
  }
});
console.log(
  `regexp: ${cases.length} cases (seed ${seed}; ${errors} syntax errors, ${matched} matching), ${mismatches} differ from Go` +
    (tooLarge > 0 ? `; known differences: over meshrev's program size ${tooLarge}` : ''),
);
process.exitCode = mismatches === 0 ? 0 : 1;
