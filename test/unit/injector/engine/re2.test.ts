// Go regexp (RE2) semantics as documented at https://pkg.go.dev/regexp and https://pkg.go.dev/regexp/syntax,
// checked against re2.ts. Expected values come from Go's documentation examples and from the behaviour Go's
// own test tables pin down (find, replace, split, quote and parse tests); where re2.ts differs on purpose
// (a smaller program-size bound), the test says so.
import {
  MAX_PROGRAM_SIZE,
  Re2BudgetError,
  Re2SyntaxError,
  StepBudget,
  UNICODE_CLASS_NAMES,
  caseFoldOrbit,
  compileRe2,
  quoteMeta,
  type StepMeter,
} from '../../../../src/injector/engine/go-template/re2.js';

function find(pattern: string, input: string): string | undefined {
  const index = compileRe2(pattern).findStringIndex(input);
  return index ? input.slice(index[0], index[1]) : undefined;
}

function submatch(pattern: string, input: string): (string | undefined)[] | undefined {
  return compileRe2(pattern).findStringSubmatch(input);
}

function compileError(pattern: string): string {
  try {
    compileRe2(pattern);
  } catch (error) {
    expect(error).toBeInstanceOf(Re2SyntaxError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(pattern)} not to compile`);
}

class CountingMeter implements StepMeter {
  steps = 0;
  calls = 0;
  charge(steps: number): void {
    this.steps += steps;
    this.calls++;
  }
}

// [pattern, input, the leftmost-first match or undefined when there is none]
type FindCase = [string, string, string | undefined];

describe('literals and escapes', () => {
  test.each<FindCase>([
    ['abc', 'xabcx', 'abc'],
    ['\\a\\f\\t\\n\\r\\v', 'x\x07\f\t\n\r\vx', '\x07\f\t\n\r\v'],
    ['\\141', 'a', 'a'],
    ['\\0', 'a\0', '\0'],
    ['\\0123', '\n3', '\n3'], // \012 then a literal 3: at most three octal digits
    ['\\12', '\n', '\n'], // two digits are octal, not a backreference
    ['\\x41', 'A', 'A'],
    ['\\x{263a}', 'a☺', '☺'],
    ['\\x{1F600}', 'a😀', '😀'],
    ['\\x{10FFFF}', '\u{10FFFF}', '\u{10FFFF}'],
    ['\\Q+|*?{[\\E', 'a+|*?{[', '+|*?{['],
    ['\\Qab\\E+', 'abbb', 'abbb'], // the repetition applies to the last quoted character
    ['\\Q\\\\E', '\\', '\\'],
    ['\\Qa.b', 'axb a.b', 'a.b'], // \Q without \E runs to the end
    [
      '\\!\\"\\#\\$\\%\\&\\\'\\(\\)\\*\\+\\,\\-\\.\\/\\:\\;\\<\\=\\>\\?\\@\\[\\\\\\]\\^\\_\\{\\|\\}\\~',
      '!"#$%&\'()*+,-./:;<=>?@[\\]^_{|}~',
      '!"#$%&\'()*+,-./:;<=>?@[\\]^_{|}~',
    ],
    ['\\`', '`', '`'],
    // A brace that does not form a repeat is a literal.
    ['a{', 'a{', 'a{'],
    ['a{,3}', 'a{,3}', 'a{,3}'],
    ['{', '{', '{'],
    ['a{1', 'a{1', 'a{1'],
    ['a{1,', 'a{1,', 'a{1,'],
    ['x{2,1', 'x{2,1', 'x{2,1'],
    ['a{01}', 'a{01}', 'a{01}'], // leading zeros do not make a count
    ['a*{', 'aa{', 'aa{'],
    ['}', '}', '}'],
    [']', ']', ']'],
    ['x', 'y', undefined],
  ])('%j on %j', (pattern, input, expected) => {
    expect(find(pattern, input)).toBe(expected);
  });
});

describe('dot', () => {
  test.each<FindCase>([
    ['.', '\n', undefined],
    ['(?s).', '\n', '\n'],
    ['.+', 'ab\ncd', 'ab'],
    ['^.$', '😀', '😀'], // one code point, two UTF-16 units
    ['^..$', '😀', undefined],
    ['^.$', '\uD800', '\uD800'], // a lone surrogate is a code point of its own
    ['a.c', 'a😀c', 'a😀c'],
  ])('%j on %j', (pattern, input, expected) => {
    expect(find(pattern, input)).toBe(expected);
  });
});

describe('character classes', () => {
  test.each<FindCase>([
    ['[abc]+', 'xxcabx', 'cab'],
    ['[^a-z]+', 'ab1234cd', '1234'],
    ['[a-]+', 'x-a-', '-a-'],
    ['[]a]+', 'x]a]', ']a]'],
    ['[^]a]', ']ab', 'b'],
    ['[a\\-\\]z]+', 'az]-bcz', 'az]-'],
    ['[a-b-c]+', 'xab-cd', 'ab-c'],
    ['[\\x41-\\x{5A}]+', 'abcDEF', 'DEF'],
    ['[\\012-\\015]+', 'a\n\v\f\rb', '\n\v\f\r'],
    ['[α-ε]+', 'xαβγx', 'αβγ'],
    ['[😀-😂]+', 'a😁😂b', '😁😂'],
    ['[^😀]', '😀b', 'b'],
    ['[^a]', '\n', '\n'], // negated classes match newline, as with Go's Perl flags
    ['[.]', 'a.', '.'],
    ['[^\\x00-\\x{10FFFF}]', 'abc', undefined],
    ['[^\\S\\s]', 'abcd', undefined],
    ['[^\\D\\d]', 'abcd', undefined],
    // Perl classes are ASCII-only.
    ['\\d+', 'abc123', '123'],
    ['\\d', '٣', undefined],
    ['\\D+', '12ab3', 'ab'],
    ['\\s+', 'a \t\n\f\rb', ' \t\n\f\r'],
    ['\\s', '\v', undefined], // Go's \s has no \v
    ['\\S+', '  ab ', 'ab'],
    ['\\w+', 'héllo_1', 'h'],
    ['\\W', 'aé', 'é'],
    ['[\\d\\s]+', 'ab1 2c', '1 2'],
    ['[^\\D]+', 'ab12', '12'],
    // The fourteen ASCII classes.
    ['[[:alnum:]]+', '-aZ9-', 'aZ9'],
    ['[[:alpha:]]+', '-aZ9', 'aZ'],
    ['[[:ascii:]]+', 'é\x7fa', '\x7fa'],
    ['[[:blank:]]+', 'a \tb', ' \t'],
    ['[[:cntrl:]]+', 'a\x00\x1f\x7fb', '\x00\x1f\x7f'],
    ['[[:digit:]]+', 'a42', '42'],
    ['[[:graph:]]+', ' a~ ', 'a~'],
    ['[[:lower:]]+', 'ABcdE', 'cd'],
    ['[[:print:]]+', '\x01a b\x7f', 'a b'],
    ['[[:punct:]]+', 'a!/:@[`{~b', '!/:@[`{~'],
    ['[[:space:]]+', 'a \t\n\v\f\rb', ' \t\n\v\f\r'],
    ['[[:upper:]]+', 'abCDe', 'CD'],
    ['[[:word:]]+', '-a_1-', 'a_1'],
    ['[[:xdigit:]]+', 'xAf09g', 'Af09'],
    ['[[:^alpha:]]+', 'ab12cd', '12'],
    ['[^[:lower:]]+', 'abCDe', 'CD'],
    ['[^\\S[:space:]]', 'abcd', undefined],
    ['[[:alpha:][:digit:]]+', '-a1-', 'a1'],
    // Unicode classes.
    ['\\pL+', '1Ωmega1', 'Ωmega'],
    ['\\PL+', 'ab12cd', '12'],
    ['\\p{Lu}+', 'abΩÉc', 'ΩÉ'],
    ['\\p{Greek}+', 'abαβγ', 'αβγ'],
    ['\\P{Greek}+', 'αβabc', 'abc'],
    ['\\p{^Greek}+', 'αβabc', 'abc'],
    ['\\P{^Greek}+', 'abαβ', 'αβ'],
    ['[\\p{Han}]+', '中文abc', '中文'],
    ['[^\\pL]+', 'ab12', '12'],
    ['\\pN+', 'x٣4', '٣4'],
    ['\\pZ', 'a\u00a0', '\u00a0'],
    ['\\p{Cc}', 'a\x01', '\x01'],
    ['\\p{C}', '\u0378', undefined], // Go's C leaves out unassigned code points (Cn)
    ['\\p{Any}+', '\n😀', '\n😀'],
    ['\\p{Cyrillic}+', 'abcЖЖ', 'ЖЖ'],
  ])('%j on %j', (pattern, input, expected) => {
    expect(find(pattern, input)).toBe(expected);
  });

  test('every category and script name \\p accepts compiles and matches what it should', () => {
    for (const name of UNICODE_CLASS_NAMES) expect(() => compileRe2(`\\p{${name}}`)).not.toThrow();
    expect(UNICODE_CLASS_NAMES).toEqual(expect.arrayContaining(['Lu', 'Nd', 'Greek', 'Latin', 'Han']));
    expect(compileRe2('^\\p{Latin}+$').matchString('Ωmega')).toBe(false);
    expect(compileRe2('^\\p{Latin}+$').matchString('Omega')).toBe(true);
  });
});

describe('case-insensitive matching uses Unicode simple case folding', () => {
  test.each<FindCase>([
    ['(?i)hello', 'HeLLo', 'HeLLo'],
    ['(?i)k', '\u212a', '\u212a'], // KELVIN SIGN
    ['(?i)K', 'k', 'k'],
    ['(?i)s', 'ſ', 'ſ'], // LONG S
    ['(?i)ß', 'ẞ', 'ẞ'],
    ['(?i)σ', 'ς', 'ς'],
    ['(?i)i', 'İ', undefined], // only Turkic folding relates these
    ['(?i)ı', 'I', undefined],
    ['(?i)[k]', 'K', 'K'],
    ['(?i)[k]', '\u212a', '\u212a'],
    ['(?i)[^k]', 'K', undefined],
    ['(?i)[^k]', '\u212a', undefined],
    ['(?i)[a-z]+', '1ſK\u212a', 'ſK\u212a'],
    ['(?i)\\w', 'ſ', 'ſ'],
    ['(?i)\\W', 'k', undefined],
    ['(?i)\\W', 's', undefined],
    ['(?i)\\W', '\u212a', undefined],
    ['(?i)[[:upper:]]+', '1ab', 'ab'],
    ['(?i)[[:^lower:]]', 'aK\u212a1', '1'],
    ['(?i)\\p{Lu}', '1a', 'a'],
    ['(?i)\\P{Lu}', 'aA1', '1'], // negation comes after folding, as in Go
    ['(?i)\\Q.K\\E', '.\u212a', '.\u212a'],
    ['(?i)\\x{212a}', 'k', 'k'],
  ])('%j on %j', (pattern, input, expected) => {
    expect(find(pattern, input)).toBe(expected);
  });

  test('fold orbits', () => {
    expect(caseFoldOrbit(0x6b)).toEqual([0x4b, 0x6b, 0x212a]);
    expect(caseFoldOrbit(0x17f)).toEqual([0x53, 0x73, 0x17f]);
    expect(caseFoldOrbit(0x3b9)).toEqual([0x345, 0x399, 0x3b9, 0x1fbe]);
    expect(caseFoldOrbit(0x31)).toEqual([0x31]);
    expect(caseFoldOrbit(0x131)).toEqual([0x131]);
  });

  test('orbits agree with ECMAScript simple case folding (/iu) for every cased code point', () => {
    // CaseFolding.txt gained these pairs after Unicode 15.0, the version Go's tables follow.
    const newerThanGo = new Set(['390:1fd3', '1fd3:390', '3b0:1fe3', '1fe3:3b0', 'fb05:fb06', 'fb06:fb05']);
    const casedTest = /^[\p{CWCM}\p{CWCF}]$/u;
    const cased: number[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if ((cp < 0xd800 || cp > 0xdfff) && casedTest.test(String.fromCodePoint(cp))) cased.push(cp);
    }
    const all = String.fromCodePoint(...cased);
    const mismatches: string[] = [];
    for (const cp of cased) {
      const sameUnderJs = new Set(
        Array.from(all.matchAll(new RegExp(`\\u{${cp.toString(16)}}`, 'giu')), (m) => m[0].codePointAt(0)!),
      );
      const orbit = new Set(caseFoldOrbit(cp));
      for (const other of new Set([...sameUnderJs, ...orbit])) {
        const key = `${cp.toString(16)}:${other.toString(16)}`;
        if (sameUnderJs.has(other) !== orbit.has(other) && !newerThanGo.has(key)) mismatches.push(key);
      }
    }
    expect(cased.length).toBeGreaterThan(2500);
    expect(mismatches).toEqual([]);
  });
});

describe('anchors', () => {
  test.each<FindCase>([
    ['^abc', 'abc', 'abc'],
    ['^abc', 'xabc', undefined],
    ['a$', 'a\n', undefined], // $ is the end of the text, not before a final newline as in Perl/JS
    ['(?m)a$', 'a\n', 'a'],
    ['/$', '/abc/', '/'],
    ['/$', '/abc', undefined],
    ['ab$', 'abcab', 'ab'],
    ['\\Aa', 'ba', undefined],
    ['(?m)\\Ab', 'a\nb', undefined],
    ['(?m)^b', 'a\nb', 'b'],
    ['(?m)a\\z', 'a\n', undefined],
    ['a\\z', 'ba', 'a'],
    ['\\bfoo\\b', 'a foo b', 'foo'],
    ['\\bfoo\\b', 'afoo', undefined],
    ['\\Boo\\B', 'foot', 'oo'],
    ['\\bé', ' é', undefined], // \b is ASCII-only
    ['(?:(?:^).)', '\n', undefined],
    ['(?s)(?:(?:^).)', '\n', '\n'],
  ])('%j on %j', (pattern, input, expected) => {
    expect(find(pattern, input)).toBe(expected);
  });

  test.each([
    ['\\b', 'xx yy', '|xx| |yy|'],
    ['\\B', 'xx yy', 'x|x y|y'],
    ['\\b', 'x', '|x|'],
    ['\\B', 'x y', 'x y'],
    ['^', 'abc\ndef', '|abc\ndef'],
    ['$', 'abc\ndef', 'abc\ndef|'],
    ['(?m)^', 'abc\ndef', '|abc\n|def'],
    ['(?m)$', 'abc\ndef', 'abc|\ndef|'],
  ])('%j marks its positions in %j', (pattern, input, expected) => {
    expect(compileRe2(pattern).replaceAllString(input, '|')).toBe(expected);
  });

  test('$ indices', () => {
    expect(compileRe2('$').findStringIndex('abcde')).toEqual([5, 5]);
    expect(compileRe2('(aa)*$').findStringSubmatch('a')).toEqual(['', undefined]);
    expect(compileRe2('(aa)*$').findStringIndex('a')).toEqual([1, 1]);
  });
});

describe('flags', () => {
  test.each<FindCase>([
    ['(?i)a(?-i)b', 'AB', undefined],
    ['(?i)a(?-i)b', 'Ab', 'Ab'],
    ['(?i:a)b', 'Ab', 'Ab'],
    ['(?i:a)b', 'AB', undefined],
    ['((?i)a)b', 'AB', undefined], // a flag set inside a group ends with it
    ['(?:a(?i)b|c)', 'C', 'C'], // ... but lasts across |
    ['(?s:.)', '\n', '\n'],
    ['(?s)a(?-s).', 'a\n', undefined],
    ['(?is)A.', 'a\n', 'a\n'],
    ['(?i-s)A.', 'a\n', undefined],
    ['(?ms)^.+$', 'a\nb', 'a\nb'],
    ['(?m-s)^.+$', 'a\nb', 'a'],
    ['(?U)a+', 'aaa', 'a'],
    ['(?U)a+?', 'aaa', 'aaa'],
    ['(?U)a{1,3}', 'aaa', 'a'],
    ['(?)a', 'a', 'a'], // an empty flag group is allowed
  ])('%j on %j', (pattern, input, expected) => {
    expect(find(pattern, input)).toBe(expected);
  });
});

describe('groups and submatches', () => {
  test('names and counts', () => {
    const re = compileRe2('(?P<first>[a-zA-Z]+) (?P<last>[a-zA-Z]+)');
    expect(re.numSubexp).toBe(2);
    expect(re.subexpNames).toEqual(['', 'first', 'last']);
    expect(re.source).toBe('(?P<first>[a-zA-Z]+) (?P<last>[a-zA-Z]+)');
    expect(re.replaceAllString('Alan Turing', '${last} ${first}')).toBe('Turing Alan');
    expect(compileRe2('(a)(?:b)(?<c>d)').subexpNames).toEqual(['', '', 'c']);
    expect(compileRe2('a.').numSubexp).toBe(0);
    expect(compileRe2('(.*)((a)b)(.*)a').numSubexp).toBe(4);
    // Go allows a name to repeat.
    expect(compileRe2('(?P<foo>.*)(?P<bar>(a)b)(?P<foo>.*)a').subexpNames).toEqual([
      '',
      'foo',
      'bar',
      '',
      'foo',
    ]);
  });

  test.each<[string, string, (string | undefined)[] | undefined]>([
    ['a(x*)b(y|z)c', '-axxxbyc-', ['axxxbyc', 'xxx', 'y']],
    ['a(x*)b(y|z)c', '-abzc-', ['abzc', '', 'z']],
    ['foo(.?)', 'seafood fool', ['food', 'd']],
    ['a*(|(b))c*', 'aacc', ['aacc', '', undefined]],
    ['(a){0}', '', ['', undefined]],
    ['(a)|b', 'b', ['b', undefined]],
    ['()', '', ['', '']],
    ['(.)(.)', '日a', ['日a', '日', 'a']],
    ['(([^xyz]*)(d))', 'abcd', ['abcd', 'abcd', 'abc', 'd']],
    ['((a|b|c)*(d))', 'abcd', ['abcd', 'abcd', 'c', 'd']],
    ['(((a|b|c)*)(d))', 'abcd', ['abcd', 'abcd', 'abc', 'c', 'd']],
    ['(a|b)*', 'ab', ['ab', 'b']], // the last iteration wins
    ['(.*).*', 'ab', ['ab', 'ab']],
    ['x', 'y', undefined],
  ])('%j on %j', (pattern, input, expected) => {
    expect(submatch(pattern, input)).toEqual(expected);
  });
});

describe('repetition', () => {
  test.each<[string, string, (string | undefined)[]]>([
    ['(a+)(a*)', 'aaa', ['aaa', 'aaa', '']],
    ['(a+?)(a*)', 'aaa', ['aaa', 'a', 'aa']],
    ['(a*?)(a*)', 'aaa', ['aaa', '', 'aaa']],
    ['(a?)(a*)', 'aaa', ['aaa', 'a', 'aa']],
    ['(a??)(a*)', 'aaa', ['aaa', '', 'aaa']],
    ['(a{1,2})(a*)', 'aaa', ['aaa', 'aa', 'a']],
    ['(a{1,2}?)(a*)', 'aaa', ['aaa', 'a', 'aa']],
    ['(a{2,})(a*)', 'aaaa', ['aaaa', 'aaaa', '']],
    ['(a{2,}?)(a*)', 'aaaa', ['aaaa', 'aa', 'aa']],
    ['<(.+)>', '<a><b>', ['<a><b>', 'a><b']],
    ['<(.+?)>', '<a><b>', ['<a>', 'a']],
    // A repeated subexpression that can match empty is compiled as (x+)? (Go issue 46123).
    ['(a*)*', 'b', ['', '']],
    ['(a*)+', 'b', ['', '']],
    ['(a*)*?', 'b', ['', undefined]],
    ['(|a)+', 'aa', ['', '']],
    ['(a|b)*?c', 'abc', ['abc', 'b']],
  ])('%j on %j', (pattern, input, expected) => {
    expect(submatch(pattern, input)).toEqual(expected);
  });

  test.each<FindCase>([
    ['a{2}', 'aaa', 'aa'],
    ['a{2,}', 'aaaa', 'aaaa'],
    ['a{2,3}', 'aaaa', 'aaa'],
    ['a{2,3}?', 'aaaa', 'aa'],
    ['a{0,2}', 'aaa', 'aa'],
    ['a{0}b', 'ab', 'b'],
    ['a{1000}', 'a'.repeat(1001), 'a'.repeat(1000)],
    ['(gopher){2}', 'gopher', undefined],
    ['(gopher){2}', 'gophergophergopher', 'gophergopher'],
    ['(?:a*)*', 'aaa', 'aaa'],
    ['^*a', 'a', 'a'], // an assertion may be repeated
    ['x*', 'xxy', 'xx'],
    ['zx+', 'zzx', 'zx'],
  ])('%j on %j', (pattern, input, expected) => {
    expect(find(pattern, input)).toBe(expected);
  });
});

describe('alternation is leftmost-first', () => {
  test.each<FindCase>([
    ['a|ab', 'ab', 'a'],
    ['ab|a', 'ab', 'ab'],
    ['a|b', 'cba', 'b'],
    ['a|', 'b', ''],
    ['|a', 'a', ''],
    ['x*|b', 'b', ''],
    ['0A|0[aA]', '0a', '0a'],
    ['abc|abd|aef|bcx|bcy', 'xbcy', 'bcy'],
  ])('%j on %j', (pattern, input, expected) => {
    expect(find(pattern, input)).toBe(expected);
  });

  test('a submatch follows the chosen branch', () => {
    expect(submatch('(a|ab)(c|bcd)', 'abcd')).toEqual(['abcd', 'a', 'bcd']);
    expect(submatch('(a|ab)(c|bcd)(d*)', 'abcd')).toEqual(['abcd', 'a', 'bcd', '']);
  });
});

describe('find', () => {
  test('Go examples', () => {
    expect(compileRe2('foo.?').findString('seafood fool')).toBe('food');
    expect(compileRe2('foo.?').findString('meat')).toBe('');
    expect(compileRe2('ab?').findStringIndex('tablett')).toEqual([1, 3]);
    expect(compileRe2('ab?').findStringIndex('foo')).toBeUndefined();
    expect(compileRe2('foo.?').matchString('seafood fool')).toBe(true);
    expect(compileRe2('foo.?').matchString('something else')).toBe(false);
    const validID = compileRe2('^[a-z]+\\[[0-9]+\\]$');
    expect(['adam[23]', 'eve[7]', 'Job[48]', 'snakey'].map((s) => validID.matchString(s))).toEqual([
      true,
      true,
      false,
      false,
    ]);
  });

  test('indices are UTF-16 offsets', () => {
    expect(compileRe2('b').findStringIndex('😀b')).toEqual([2, 3]);
    expect(compileRe2('(.)(.)').findStringSubmatch('😀b')).toEqual(['😀b', '😀', 'b']);
  });
});

describe('findAllString', () => {
  test.each<[string, string, number, string[] | undefined]>([
    ['a.', 'paranormal', -1, ['ar', 'an', 'al']],
    ['a.', 'paranormal', 2, ['ar', 'an']],
    ['a.', 'graal', -1, ['aa']],
    ['a.', 'none', -1, undefined],
    ['foo.?', 'seafood fool', -1, ['food', 'fool']],
    ['a', 'bababaab', -1, ['a', 'a', 'a', 'a']],
    ['a', 'bababaab', 0, undefined],
    ['a', 'bababaab', 1, ['a']],
    ['a', 'bababaab', 3, ['a', 'a', 'a']],
    ['a', 'bababaab', 5, ['a', 'a', 'a', 'a']],
    // Empty matches: none right after the previous match.
    ['a*', 'baaab', -1, ['', 'aaa', '']],
    ['x*', 'abc', -1, ['', '', '', '']],
    ['', 'abc', -1, ['', '', '', '']],
    ['', '', -1, ['']],
    ['(|a)*', 'aa', -1, ['', '', '']],
    ['[a-c]*', '\u65e5', -1, ['', '']],
    ['[^\u65e5]', 'abc\u65e5def', -1, ['a', 'b', 'c', 'd', 'e', 'f']],
    ['ab*', 'abbaab', -1, ['abb', 'a', 'ab']],
    ['\\b', 'x y', -1, ['', '', '', '']],
    ['.', '😀a😀', -1, ['😀', 'a', '😀']],
    ['', '😀', -1, ['', '']],
  ])('%j on %j, n=%d', (pattern, input, n, expected) => {
    expect(compileRe2(pattern).findAllString(input, n)).toEqual(expected);
  });
});

describe('replaceAllString', () => {
  test.each([
    // Go's documentation example.
    ['a(x*)b', 'T', '-ab-axxb-', '-T-T-'],
    ['a(x*)b', '$1', '-ab-axxb-', '--xx-'],
    ['a(x*)b', '$1W', '-ab-axxb-', '---'], // the group named "1W", which does not exist
    ['a(x*)b', '${1}W', '-ab-axxb-', '-W-xxW-'],
    // Patterns that match the empty string.
    ['', '', '', ''],
    ['', 'x', '', 'x'],
    ['', 'x', 'abc', 'xaxbxcx'],
    ['x*', '-', 'abc', '-a-b-c-'],
    ['b', 'x', 'abc', 'axc'],
    ['y', 'x', 'abc', 'abc'],
    ['[a-c]*', 'x', '\u65e5', 'x\u65e5x'],
    ['[^\u65e5]', 'x', 'abc\u65e5def', 'xxx\u65e5xxx'],
    ['^[a-c]*', 'x', 'abcdabc', 'xdabc'],
    ['[a-c]*$', 'x', 'abcdabc', 'abcdx'],
    ['^[a-c]*$', 'x', 'abcdabc', 'abcdabc'],
    ['^[a-c]*', 'x', '', 'x'],
    ['[a-c]+$', 'x', 'dabce', 'dabce'],
    ['[a-c]*', 'x', 'def', 'xdxexfx'],
    ['[a-c]+', 'x', 'abcbcdcdedef', 'xdxdedef'],
    ['[a-c]*', 'x', 'abcbcdcdedef', 'xdxdxexdxexfx'],
    ['x', 'xXx', 'xxxXxxx', 'xXxxXxxXxXxXxxXxxXx'],
    ['', '-', 'a😀', '-a-😀-'],
    ['😀', 'x', 'a😀b', 'axb'],
    // Expansion.
    ['a+', '($0)', 'banana', 'b(a)n(a)n(a)'],
    ['a+', '(${0})$0', 'banana', 'b(a)an(a)an(a)a'],
    ['hello, (.+)', 'goodbye, ${1}', 'hello, world', 'goodbye, world'],
    ['hello, (.+)', 'goodbye, $1x', 'hello, world', 'goodbye, '],
    ['hello, (.+)', '<$0><$1><$2><$3>', 'hello, world', '<hello, world><world><><>'],
    ['hello, (?P<noun>.+)', 'goodbye, $noun!', 'hello, world', 'goodbye, world!'],
    ['hello, (?P<noun>.+)', 'goodbye, ${noun}', 'hello, world', 'goodbye, world'],
    ['(?P<x>hi)|(?P<x>bye)', '$x$x$x', 'hi', 'hihihi'],
    ['(?P<x>hi)|(?P<x>bye)', '$x$x$x', 'bye', 'byebyebye'], // the first group of that name that matched
    ['(?P<x>hi)|(?P<x>bye)', '$xyz', 'hi', ''],
    ['(?P<x>hi)|(?P<x>bye)', '${x}yz', 'hi', 'hiyz'],
    ['(?P<x>hi)|(?P<x>bye)', 'hello $$x', 'hi', 'hello $x'],
    ['a+', '${oops', 'aaa', '${oops'],
    ['a+', '$$', 'aaa', '$'],
    ['a+', '$', 'aaa', '$'],
    ['a+', '$0é', 'aaa', ''], // a name runs over Unicode letters too
    ['(a)', '[$01]', 'a', '[]'], // $01 is the name "01", not group 1
    ['(x)?', '$1', '123', '123'],
    ['(a)(b){0}(c)', '.$1|$3.', 'xacxacx', 'x.a|c.x.a|c.x'],
    ['((a(b){0}){3}){5}(h)', 'y caramb$2', 'say aaaaaaaaaaaaaaaah', 'say ay caramba'],
  ])('%j with %j on %j', (pattern, repl, input, expected) => {
    expect(compileRe2(pattern).replaceAllString(input, repl)).toBe(expected);
  });
});

describe('replaceAllLiteralString', () => {
  test.each([
    ['a(x*)b', 'T', '-ab-axxb-', '-T-T-'],
    ['a(x*)b', '$1', '-ab-axxb-', '-$1-$1-'],
    ['a(x*)b', '${1}', '-ab-axxb-', '-${1}-${1}-'],
    ['a+', '(${0})$0', 'banana', 'b(${0})$0n(${0})$0n(${0})$0'],
    ['a+', '$$', 'aaa', '$$'],
    ['x*', '-', 'abc', '-a-b-c-'],
    ['', 'x', 'abc', 'xaxbxcx'],
  ])('%j with %j on %j', (pattern, repl, input, expected) => {
    expect(compileRe2(pattern).replaceAllLiteralString(input, repl)).toBe(expected);
  });
});

describe('split', () => {
  test.each<[string, string, number, string[] | undefined]>([
    // Go's documentation examples.
    ['a*', 'abaabaccadaaae', 5, ['', 'b', 'b', 'c', 'cadaaae']],
    ['a', 'banana', -1, ['b', 'n', 'n', '']],
    ['a', 'banana', 0, undefined],
    ['a', 'banana', 1, ['banana']],
    ['a', 'banana', 2, ['b', 'nana']],
    ['z+', 'pizza', -1, ['pi', 'a']],
    ['z+', 'pizza', 0, undefined],
    ['z+', 'pizza', 1, ['pizza']],
    ['z+', 'pizza', 2, ['pi', 'a']],
    // Go's split tests.
    [':', 'foo:and:bar', -1, ['foo', 'and', 'bar']],
    [':', 'foo:and:bar', 2, ['foo', 'and:bar']],
    ['foo', 'foo:and:bar', -1, ['', ':and:bar']],
    ['bar', 'foo:and:bar', -1, ['foo:and:', '']],
    ['baz', 'foo:and:bar', -1, ['foo:and:bar']],
    ['a', 'baabaab', -1, ['b', '', 'b', '', 'b']],
    ['a*', 'baabaab', -1, ['b', 'b', 'b']],
    ['ba*', 'baabaab', -1, ['', '', '', '']],
    ['f*b*', 'foobar', -1, ['', 'o', 'o', 'a', 'r']],
    ['f+.*b+', 'foobar', -1, ['', 'ar']],
    ['o{2}', 'foobooboar', -1, ['f', 'b', 'boar']],
    [',', 'a,b,c,d,e,f', 3, ['a', 'b', 'c,d,e,f']],
    [',', ',', -1, ['', '']],
    [',', ',,,', -1, ['', '', '', '']],
    [',', '', -1, ['']],
    ['.*', '', -1, ['']],
    ['', '', -1, []],
    ['', 'foobar', -1, ['f', 'o', 'o', 'b', 'a', 'r']],
    [':', ':x:y:z:', -1, ['', 'x', 'y', 'z', '']],
    ['', 'a😀', -1, ['a', '😀']],
  ])('%j splits %j, n=%d', (pattern, input, n, expected) => {
    expect(compileRe2(pattern).split(input, n)).toEqual(expected);
  });
});

describe('quoteMeta', () => {
  test.each([
    ['', ''],
    ['foo', 'foo'],
    ['日本語+', '日本語\\+'],
    ['foo\\.\\$', 'foo\\\\\\.\\\\\\$'],
    ['foo.\\$', 'foo\\.\\\\\\$'],
    ['!@#$%^&*()_+-=[{]}\\|,<.>/?~', '!@#\\$%\\^&\\*\\(\\)_\\+-=\\[\\{\\]\\}\\\\\\|,<\\.>/\\?~'],
    [
      'Escaping symbols like: .+*?()|[]{}^$',
      'Escaping symbols like: \\.\\+\\*\\?\\(\\)\\|\\[\\]\\{\\}\\^\\$',
    ],
  ])('%j', (input, expected) => {
    expect(quoteMeta(input)).toBe(expected);
    if (input !== '') {
      expect(compileRe2(expected).replaceAllString(`abc${input}def`, 'xyz')).toBe('abcxyzdef');
    }
  });
});

describe('syntax errors carry Go messages', () => {
  test.each([
    ['*', 'missing argument to repetition operator: `*`'],
    ['+', 'missing argument to repetition operator: `+`'],
    ['?', 'missing argument to repetition operator: `?`'],
    ['*?', 'missing argument to repetition operator: `*?`'],
    ['a|*', 'missing argument to repetition operator: `*`'],
    ['(*)', 'missing argument to repetition operator: `*`'],
    ['(?i)*', 'missing argument to repetition operator: `*`'],
    ['{2}', 'missing argument to repetition operator: `{2}`'],
    ['\\Q\\E*', 'missing argument to repetition operator: `*`'],
    ['(abc', 'missing closing ): `(abc`'],
    ['x(a', 'missing closing ): `x(a`'],
    ['a(b', 'missing closing ): `a(b`'],
    ['(?P<name>a', 'missing closing ): `(?P<name>a`'],
    ['abc)', 'unexpected ): `abc)`'],
    ['(a))', 'unexpected ): `(a))`'],
    ['x[a-z', 'missing closing ]: `[a-z`'],
    ['[a', 'missing closing ]: `[a`'],
    ['[]', 'missing closing ]: `[]`'],
    ['[[:alpha:]', 'missing closing ]: `[[:alpha:]`'],
    ['[z-a]', 'invalid character class range: `z-a`'],
    ['[a-Z]', 'invalid character class range: `a-Z`'],
    ['(?i)[a-Z]', 'invalid character class range: `a-Z`'],
    ['[\\x{7a}-a]', 'invalid character class range: `\\x{7a}-a`'],
    ['abc\\', 'trailing backslash at end of expression: ``'],
    ['[a\\', 'trailing backslash at end of expression: ``'],
    ['a**', 'invalid nested repetition operator: `**`'],
    ['a*+', 'invalid nested repetition operator: `*+`'],
    ['a+*', 'invalid nested repetition operator: `+*`'],
    ['a*??', 'invalid nested repetition operator: `*??`'],
    ['a{2}{3}', 'invalid nested repetition operator: `{2}{3}`'],
    ['a{2}*', 'invalid nested repetition operator: `{2}*`'],
    ['\\x', 'invalid escape sequence: `\\x`'],
    ['\\xZ1', 'invalid escape sequence: `\\xZ1`'],
    ['\\x{', 'invalid escape sequence: `\\x{`'],
    ['\\x{}', 'invalid escape sequence: `\\x{}`'],
    ['\\x{12g}', 'invalid escape sequence: `\\x{12g`'],
    ['\\x{110000}', 'invalid escape sequence: `\\x{110000`'],
    ['\\1', 'invalid escape sequence: `\\1`'],
    ['(a)\\1', 'invalid escape sequence: `\\1`'],
    ['\\8', 'invalid escape sequence: `\\8`'],
    ['\\C', 'invalid escape sequence: `\\C`'],
    ['\\Z', 'invalid escape sequence: `\\Z`'],
    ['\\G', 'invalid escape sequence: `\\G`'],
    ['\\é', 'invalid escape sequence: `\\é`'],
    ['[a-\\d]', 'invalid escape sequence: `\\d`'],
    ['[\\b]', 'invalid escape sequence: `\\b`'],
    ['(?=a)', 'invalid or unsupported Perl syntax: `(?=`'],
    ['(?!a)', 'invalid or unsupported Perl syntax: `(?!`'],
    ['(?P=name)', 'invalid or unsupported Perl syntax: `(?P`'],
    ['(?#c)', 'invalid or unsupported Perl syntax: `(?#`'],
    ['(?x)', 'invalid or unsupported Perl syntax: `(?x`'],
    ['(?i', 'invalid or unsupported Perl syntax: `(?i`'],
    ['(?', 'invalid or unsupported Perl syntax: `(?`'],
    ['(?i-)', 'invalid or unsupported Perl syntax: `(?i-)`'],
    ['(?--i)', 'invalid or unsupported Perl syntax: `(?--`'],
    // Go reads (?< as the start of a name, so lookbehind is reported as a bad name.
    ['(?<=a)b', 'invalid named capture: `(?<=a)b`'],
    ['(?<!a)b', 'invalid named capture: `(?<!a)b`'],
    ['(?P<name', 'invalid named capture: `(?P<name`'],
    ['(?P<>a)', 'invalid named capture: `(?P<>`'],
    ['(?P<x y>a)', 'invalid named capture: `(?P<x y>`'],
    ['(?<>a)', 'invalid named capture: `(?<>`'],
    ['(?<a-b>x)', 'invalid named capture: `(?<a-b>`'],
    ['x{1001}', 'invalid repeat count: `{1001}`'],
    ['x{1001,}', 'invalid repeat count: `{1001,}`'],
    ['x{2,1}', 'invalid repeat count: `{2,1}`'],
    ['x{9876543210}', 'invalid repeat count: `{9876543210}`'],
    ['x{1,9876543210}', 'invalid repeat count: `{1,9876543210}`'],
    ['(?:[a-z]{4}){0,251}', 'invalid repeat count: `{0,251}`'], // nested counts multiply past 1000
    ['((((((((((x{2}){2}){2}){2}){2}){2}){2}){2}){2}){2})', 'invalid repeat count: `{2}`'],
    ['(?:(?:a{10}){200}){0}', 'invalid repeat count: `{200}`'],
    ['\\p{Foo}', 'invalid character class range: `\\p{Foo}`'],
    ['\\pX', 'invalid character class range: `\\pX`'],
    ['\\p', 'invalid character class range: `\\p`'],
    ['\\p{L', 'invalid character class range: `\\p{L`'],
    ['\\p{^}', 'invalid character class range: `\\p{^}`'],
    ['[\\p{Foo}]', 'invalid character class range: `\\p{Foo}`'],
    ['[[:foo:]]', 'invalid character class range: `[:foo:]`'],
    ['[[:alpha]x:]]', 'invalid character class range: `[:alpha]x:]`'],
  ])('%j', (pattern, message) => {
    expect(compileError(pattern)).toBe(`error parsing regexp: ${message}`);
  });

  test('the error names its code and fragment', () => {
    try {
      compileRe2('a(b');
      throw new Error('expected a syntax error');
    } catch (error) {
      expect(error).toBeInstanceOf(Re2SyntaxError);
      expect(error).toMatchObject({ code: 'missing closing )', expr: 'a(b' });
    }
  });

  test('valid forms that look suspicious', () => {
    for (const pattern of [
      '(?:[a-z]{4}){0,250}', // 4 × 250 = 1000, at the limit
      '((((((((((x{2}){2}){2}){2}){2}){2}){2}){2}){2}))',
      '(?:(?:a{10}){100}){0}',
      '[a-abc-c\\-\\]\\[]',
      '\\!\\\\',
      '(?P<name>a)(?<other>b)',
      '(?i-s:a)',
      '\\_',
    ]) {
      expect(() => compileRe2(pattern)).not.toThrow();
    }
  });
});

describe('size and nesting limits', () => {
  test('nesting deeper than 1000 is refused', () => {
    expect(() => compileRe2('('.repeat(999) + ')'.repeat(999))).not.toThrow();
    expect(() => compileRe2('(?:'.repeat(999) + ')*'.repeat(999))).not.toThrow();
    const capturing = '('.repeat(1000) + ')'.repeat(1000);
    expect(compileError(capturing)).toBe(
      `error parsing regexp: expression nests too deeply: \`${capturing}\``,
    );
    const repeated = '(?:'.repeat(1000) + ')*'.repeat(1000);
    expect(compileError(repeated)).toBe(`error parsing regexp: expression nests too deeply: \`${repeated}\``);
    // A hundred thousand open groups fail cleanly (and early), without overflowing the stack.
    expect(compileError('('.repeat(100_000))).toMatch(/^error parsing regexp: expression too large: /);
  });

  test('programs larger than MAX_PROGRAM_SIZE instructions are refused (Go allows more)', () => {
    expect(compileRe2('[a-z]{1000}').programSize).toBeLessThanOrEqual(MAX_PROGRAM_SIZE);
    const large = '[a-z]{1000}'.repeat(11);
    expect(compileError(large)).toBe(`error parsing regexp: expression too large: \`${large}\``);
    const wide = 'a'.repeat(MAX_PROGRAM_SIZE);
    expect(compileError(wide)).toBe(`error parsing regexp: expression too large: \`${wide}\``);
    // Patterns are measured while they are read, so a huge one is refused before it is built.
    for (const huge of ['a'.repeat(4_000_000), `[${'a'.repeat(4_000_000)}]`, '(?:'.repeat(1_000_000)]) {
      expect(compileError(huge)).toMatch(/^error parsing regexp: expression too large: /);
    }
  });
});

describe('nested counted repeats (found by comparing with Go: make differential)', () => {
  test.each([
    // Counts multiply through x{0,} (counted as what it repeats) but not through x{0}, which never matches.
    ['(?:(?:a{1000}){0,}){2}', 'error parsing regexp: invalid repeat count: `{2}`'],
    ['(?:a{400}){3}', 'error parsing regexp: invalid repeat count: `{3}`'],
  ])('%s is refused', (pattern, message) => {
    expect(compileError(pattern)).toBe(message);
  });

  test('a repeat of x{0} and a product within 1000 compile', () => {
    expect(compileRe2('(?:(?:a{600}){0}){2}').matchString('')).toBe(true);
    expect(compileRe2('(?:a{100}){10}').matchString('a'.repeat(1000))).toBe(true);
  });

  test('size is checked before the counts, as Go does', () => {
    // Over Go's program bound (and meshrev's), with counts multiplying past 1000 too: Go reports the size.
    const pattern = '(?:[a-z]{1000}x{1000}[0-9]{1000}y{1000}){1000}';
    expect(compileError(pattern)).toBe(`error parsing regexp: expression too large: \`${pattern}\``);
  });
});

describe('matching is linear in the input', () => {
  const n = 10_000;
  test.each([
    ['(a*)*b', 'a'.repeat(n), false],
    ['(a|a)*b', 'a'.repeat(n), false],
    ['(x+x+)+y', 'x'.repeat(n), false],
    ['(a|aa)*$', 'a'.repeat(n), true],
    ['(a|aa)*c', 'a'.repeat(n), false],
    ['(?:a+)+(?:b+)+c', 'ab'.repeat(n / 2), false],
    ['(\\w+\\s?)*$', 'a '.repeat(n / 2) + '!', true],
  ])('%j on %d characters stays within programSize × (length + 1) steps', (pattern, input, matches) => {
    const re = compileRe2(pattern);
    const bound = re.programSize * (input.length + 1);
    for (const run of [
      (m: StepMeter) => expect(re.matchString(input, m)).toBe(matches),
      (m: StepMeter) => expect(re.findStringSubmatch(input, m) !== undefined).toBe(matches),
    ]) {
      const meter = new CountingMeter();
      run(meter);
      expect(meter.steps).toBeGreaterThan(input.length);
      expect(meter.steps).toBeLessThanOrEqual(bound);
    }
  });

  test('a failing search over everything still makes one pass in findAll, replaceAll and split', () => {
    const re = compileRe2('(a*)*b');
    const input = 'a'.repeat(n);
    for (const run of [
      (m: StepMeter) => expect(re.findAllString(input, -1, m)).toBeUndefined(),
      (m: StepMeter) => expect(re.replaceAllString(input, 'x', m)).toBe(input),
      (m: StepMeter) => expect(re.split(input, -1, m)).toEqual([input]),
    ]) {
      const meter = new CountingMeter();
      run(meter);
      expect(meter.steps).toBeLessThanOrEqual(re.programSize * (input.length + 1));
    }
  });

  test('doubling the input at most doubles the work', () => {
    const re = compileRe2('(x+x+)+y');
    const work = (length: number) => {
      const meter = new CountingMeter();
      re.matchString('x'.repeat(length), meter);
      return meter.steps;
    };
    expect(work(20_000)).toBeLessThanOrEqual(2 * work(10_000) + re.programSize);
  });

  test('the meter is charged in batches', () => {
    const meter = new CountingMeter();
    compileRe2('(a*)*b').matchString('a'.repeat(n), meter);
    expect(meter.calls).toBeGreaterThan(1);
    expect(meter.calls).toBeLessThanOrEqual(meter.steps / 1000 + 1);
  });
});

describe('step budgets', () => {
  test('a budget aborts a long match with Re2BudgetError', () => {
    const re = compileRe2('(a*)*b');
    const budget = new StepBudget(5_000);
    expect(() => re.matchString('a'.repeat(100_000), budget)).toThrow(Re2BudgetError);
    expect(budget.used).toBeGreaterThan(5_000);
    expect(budget.used).toBeLessThan(5_000 + 1024 + 2 * re.programSize);
  });

  test('one budget bounds work across calls', () => {
    const re = compileRe2('a+b');
    const budget = new StepBudget(2_000);
    const input = 'a'.repeat(100) + 'b';
    expect(() => {
      for (let i = 0; i < 1_000; i++) re.matchString(input, budget);
    }).toThrow(Re2BudgetError);
  });

  test('the *All functions charge every search, so a budget also stops their quadratic worst case', () => {
    // Each search for `a*b|a` reads to the end of the input before settling on "a", as Go's does.
    const re = compileRe2('a*b|a');
    const meter = new CountingMeter();
    expect(re.findAllString('a'.repeat(1_000), -1, meter)).toHaveLength(1_000);
    expect(meter.steps).toBeGreaterThan(1_000 * 1_000);
    expect(() => re.findAllString('a'.repeat(10_000), -1, new StepBudget(1_000_000))).toThrow(Re2BudgetError);
    expect(() => re.replaceAllString('a'.repeat(10_000), 'x', new StepBudget(1_000_000))).toThrow(
      Re2BudgetError,
    );
    expect(() => re.split('a'.repeat(10_000), -1, new StepBudget(1_000_000))).toThrow(Re2BudgetError);
  });

  test('the regexp stays usable after an abort, and works without a meter', () => {
    const re = compileRe2('(a*)*b');
    expect(() => re.matchString('a'.repeat(10_000), new StepBudget(100))).toThrow(Re2BudgetError);
    expect(re.findString('aab')).toBe('aab');
    expect(re.matchString('a'.repeat(10_000))).toBe(false);
  });

  test('a meter may run the same regexp again', () => {
    const re = compileRe2('a+');
    const inner: boolean[] = [];
    const meter: StepMeter = {
      charge: () => {
        inner.push(re.matchString('xa'));
      },
    };
    expect(re.findString('b' + 'a'.repeat(5_000), meter)).toBe('a'.repeat(5_000));
    expect(inner.length).toBeGreaterThan(0);
    expect(inner.every(Boolean)).toBe(true);
  });
});
