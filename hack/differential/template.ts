// Compares meshrev's Go text/template implementation (src/injector/engine/go-template/, which renders custom
// injection templates) with Go's text/template and sprig, as istiod parses injection templates, on random
// templates over one data document: each output must be Go's, and each template Go refuses must fail here too.
// Not a test (it needs Go); run it after changing the template engine. From the repository root:
//   make differential [DIFFERENTIAL_ARGS="--cases 20000 --seed 7"]
//
// The data holds no numbers and the templates read no missing fields: those are where meshrev differs on purpose
// (JSON numbers are float64 in Go and integers here; a missing field prints "" here, `<no value>` in Go).
import { ISTIO_FUNCTIONS } from '../../src/injector/engine/custom-templates.js';
import { parseGoTemplate, type FuncMap } from '../../src/injector/engine/go-template/index.js';
import { askGo, goBinaryArgument, option, random } from './common.js';

interface TemplateCase {
  template: string;
  data: unknown;
}

/** What the Go side prints for a case (hack/differential/template.go). */
interface TemplateResult {
  output?: string;
  parseError?: string;
  execError?: string;
}

const DATA = {
  S: 'Hello, World',
  Name: 'istio-proxy',
  Empty: '',
  Spaced: '  padded\tline\n',
  Unicode: 'αβγ-😀',
  L: ['b', 'a', 'c', 'a', ''],
  M: { k: 'v', a: 'x,y,z', z: '' },
  Tricky: {
    y: 'yes',
    n: 'no',
    on: 'on',
    num: '12',
    f: '1.5',
    t: 'true',
    null: 'null',
    colon: 'a: b',
    dash: '- x',
    multi: 'a\nb',
  },
  T: true,
  F: false,
  Nested: { L: ['x', 'y'], M: { inner: 'deep' } },
};

type Kind = 'string' | 'int' | 'bool' | 'list' | 'map';

/**
 * printf formats with a verb for a value of any kind and one for an int, flags, widths and precisions. The int is
 * a literal or a len, and %T is left to the unit tests: sprig's arithmetic gives int64, which only they show.
 */
const PRINTF_FORMATS = [
  '"%v %d"',
  '"%+v %05d"',
  '"%#v %x"',
  '"%X %X"',
  '"%q %o"',
  '"%-8v| %+d"',
  '"%8.3v %b"',
  '"%s %c"',
  '"%x %U"',
  '"%t %v"',
  '"%v %%"',
  '"%[2]d %[1]v"',
  '"%v"',
  '"%d %d %d"',
  '"%!"',
  '"%z %d"',
];

/** Actions Go's parser refuses, so that parse errors are compared too. */
const BROKEN_ACTIONS = [
  '{{ if }}',
  '{{ end }}',
  '{{ .S',
  '{{ $undeclared }}',
  '{{ nosuchfunction 1 }}',
  '{{ /* spaced comment */ }}',
  '{{ else }}',
  '{{ range }}{{ end }}',
  '{{ (upper "a" }}',
  '{{ "unterminated }}',
  '{{ 1 2 }}',
  '{{ break }}',
  '{{ .S | }}',
  '{{ define "x" }}{{ end }}{{ define "x" }}y{{ end }}',
];

function generator(next: () => number) {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const smallInt = () => String(Math.floor(next() * 5));
  const stringLiteral = () => pick(['"a"', '"-"', '""', '"x,y"', '`raw\\n`', '"Hello"', '"é"', '" "']);

  // Each kind: leaves first (used at depth 0), then expressions built from smaller ones.
  const expression = (kind: Kind, depth: number): string => {
    const sub = (k: Kind) => expression(k, depth + 1);
    const leaf = depth >= 3 || next() < 0.3;
    switch (kind) {
      case 'string':
        if (leaf)
          return pick([
            '.S',
            '.Name',
            '.Empty',
            '.Spaced',
            '.Unicode',
            '.M.k',
            '.Nested.M.inner',
            stringLiteral(),
          ]);
        return pick([
          () => `(upper ${sub('string')})`,
          () => `(lower ${sub('string')})`,
          () => `(title ${sub('string')})`,
          () => `(trim ${sub('string')})`,
          () => `(trimAll "-" ${sub('string')})`,
          () => `(trimPrefix "H" ${sub('string')})`,
          () => `(trimSuffix "d" ${sub('string')})`,
          () => `(quote ${sub('string')})`,
          () => `(squote ${sub('string')})`,
          () => `(cat ${sub('string')} ${sub('int')} ${sub('bool')})`,
          () =>
            `(printf "%s|%d|%v|%q|%5.2s|%-4d|%x" ${sub('string')} ${sub('int')} ${sub('list')} ${sub('string')} ${sub('string')} ${sub('int')} ${sub('string')})`,
          () =>
            `(printf ${pick(PRINTF_FORMATS)} ${sub(pick<Kind>(['string', 'int', 'bool', 'list', 'map']))} ${pick(['3', '-3', '0', '(len .L)'])})`,
          () => `(print ${sub('string')} ${sub('int')} ${sub('list')})`,
          () => `(println ${sub('string')} ${sub('map')})`,
          () => `(replace "l" "L" ${sub('string')})`,
          () => `(repeat ${smallInt()} ${sub('string')})`,
          // They cut bytes: of ASCII text anywhere, of two-byte characters between them (a cut inside one is a
          // known difference, below).
          () => `(substr ${smallInt()} ${smallInt()} ${pick(['.S', '.Name', '.Spaced', '(upper .S)'])})`,
          () => `(substr ${pick(['0', '2'])} ${pick(['4', '6', '-1'])} "αβγ")`,
          () =>
            `(trunc ${pick(['2', '-2', '0', '20'])} ${pick(['.S', '.Name', '.Spaced', '"αβγ"', '(lower "ΑΒΓ")'])})`,
          () => `(indent ${smallInt()} ${sub('string')})`,
          () => `(nindent ${smallInt()} ${sub('string')})`,
          () => `(join ${stringLiteral()} ${sub('list')})`,
          () => `(toString ${sub(pick<Kind>(['int', 'bool', 'list', 'map']))})`,
          () => `(toJson ${sub(pick<Kind>(['string', 'int', 'list', 'map']))})`,
          () => `(toPrettyJson ${sub('map')})`,
          () => `(toYaml ${sub(pick<Kind>(['string', 'int', 'bool', 'list', 'map', 'map']))})`,
          () => `(b64enc ${sub('string')})`,
          () => `(b64dec (b64enc ${sub('string')}))`,
          () => `(default "fallback" ${sub('string')})`,
          () => `(coalesce .Empty ${sub('string')})`,
          () => `(ternary "yes" "no" ${sub('bool')})`,
          () => `(index .M ${pick(['"k"', '"a"', '"z"'])})`,
          () => `(first ${sub('list')})`,
          () => `(last ${sub('list')})`,
          () => `(get ${sub('map')} "k")`,
          // Of data and literals only: sprig's results have Go types (int64, []string) that JSON values do not.
          () => `(typeOf ${pick(['.S', '.L', '.M', '.T', '3', '"x"', '(list)', '(dict)'])})`,
          () => `(kindOf ${pick(['.S', '.L', '.M', '.T', '3', '"x"', '(list)', '(dict)'])})`,
          () => `(html ${sub('string')})`,
          () => `(js ${sub('string')})`,
          () => `(urlquery ${sub('string')})`,
          () => `(slice ${sub('string')} ${pick(['0', '1'])})`,
          () =>
            `(regexReplaceAll ${pick(['"[aeiou]"', '"l+"', '"(o)(.)"', '"^"'])} ${sub('string')} ${pick(['"_"', '"<$1>"', '"${2}$1"'])})`,
          () => `(regexFind "[A-Z][a-z]*" ${sub('string')})`,
          () => `(regexQuoteMeta ${sub('string')})`,
        ])();
      case 'int':
        if (leaf) return pick([smallInt(), '10', '-3']);
        return pick([
          () => `(len ${sub(pick<Kind>(['string', 'list', 'map']))})`,
          () => `(add ${sub('int')} ${sub('int')})`,
          () => `(sub ${sub('int')} ${sub('int')})`,
          () => `(mul ${sub('int')} ${sub('int')})`,
          () => `(div ${sub('int')} ${pick(['1', '2', '3', '-2'])})`,
          () => `(mod ${sub('int')} ${pick(['2', '3', '-2'])})`,
          () => `(max ${sub('int')} ${sub('int')})`,
          () => `(min ${sub('int')} ${sub('int')})`,
          () => `(atoi ${pick(['"12"', '"-4"', '"x"', '""'])})`,
          () => `(int ${pick(['"7"', '3', 'true'])})`,
        ])();
      case 'bool':
        if (leaf) return pick(['.T', '.F', 'true', 'false']);
        return pick([
          () => `(eq ${sub('string')} ${sub('string')})`,
          () => `(eq ${sub('int')} ${sub('int')} ${sub('int')})`,
          () => `(ne ${sub('int')} ${sub('int')})`,
          () => `(lt ${sub('int')} ${sub('int')})`,
          () => `(ge ${sub('string')} ${sub('string')})`,
          () => `(and ${sub('bool')} ${sub('string')})`,
          () => `(or ${sub('bool')} ${sub('int')})`,
          () => `(not ${sub(pick<Kind>(['bool', 'string', 'list']))})`,
          () => `(empty ${sub(pick<Kind>(['string', 'int', 'list', 'map', 'bool']))})`,
          () => `(contains "l" ${sub('string')})`,
          () => `(hasPrefix "He" ${sub('string')})`,
          () => `(hasSuffix "d" ${sub('string')})`,
          () => `(hasKey ${sub('map')} ${pick(['"k"', '"nope"'])})`,
          () => `(has "a" ${sub('list')})`,
          () => `(kindIs "string" ${sub(pick<Kind>(['string', 'list']))})`,
          () => `(regexMatch ${pick(['"^[A-Z]"', '"o,"', '"(?i)PROXY$"'])} ${sub('string')})`,
        ])();
      case 'list':
        if (leaf) return pick(['.L', '.Nested.L', '(list)']);
        return pick([
          () => `(list ${sub('string')} ${sub('int')})`,
          () => `(splitList ${pick(['","', '"l"', '""'])} ${sub('string')})`,
          () => `(append ${sub('list')} ${sub('string')})`,
          () => `(prepend ${sub('list')} ${sub('string')})`,
          () => `(concat ${sub('list')} ${sub('list')})`,
          () => `(uniq ${sub('list')})`,
          () => `(sortAlpha ${sub('list')})`,
          () => `(rest ${sub('list')})`,
          () => `(initial ${sub('list')})`,
          () => `(compact ${sub('list')})`,
          () => `(without ${sub('list')} "a")`,
          () => `(sortAlpha (keys ${sub('map')}))`,
          () => `(sortAlpha (values ${sub('map')}))`,
          () => `(toStrings (list ${sub('int')} ${sub('bool')}))`,
          () => `(regexFindAll "[a-z]" ${sub('string')} ${pick(['-1', '2'])})`,
          () => `(regexSplit ${pick(['","', '"l+"', '""'])} ${sub('string')} ${pick(['-1', '2'])})`,
          () => `(pluck "k" ${sub('map')} (dict "k" "w"))`,
          () => `(slice ${sub('list')} ${pick(['0', '1'])})`,
        ])();
      case 'map':
        if (leaf) return pick(['.M', '.Nested.M', '.Tricky', '(dict)', '(dict "n" (first (list)) "k" "w")']);
        return pick([
          () => `(dict "a" ${sub('string')} "b" ${sub('int')} "c" ${sub('list')})`,
          () => `(merge (dict "k" "mine") ${sub('map')})`,
          () => `(mergeOverwrite (dict "k" "mine" "q" "r") ${sub('map')})`,
          () => `(deepCopy ${sub('map')})`,
          () => `(fromJson ${pick(['`{"a":"b","c":[true]}`', '`{}`', '`[1]`'])})`,
        ])();
    }
  };

  const action = (depth: number): string => {
    const trimLeft = next() < 0.2 ? '- ' : ' ';
    const trimRight = next() < 0.2 ? ' -' : ' ';
    const open = `{{${trimLeft}`;
    const close = `${trimRight}}}`;
    const anyKind = () => pick<Kind>(['string', 'string', 'int', 'bool', 'list', 'map']);
    const body = () => (depth < 2 ? statements(depth + 1) : expression('string', 2));
    return pick([
      () => `${open}${expression(anyKind(), 0)}${close}`,
      () =>
        `${open}${expression('string', 1)} | ${pick(['upper', 'quote', 'trim', 'title', 'squote'])}${close}`,
      () =>
        `${open}if ${expression('bool', 1)}${close}${body()}{{ else if ${expression('bool', 1)} }}${body()}{{ else }}${body()}{{ end }}`,
      () =>
        `${open}range $i, $v := ${expression(pick<Kind>(['list', 'map']), 1)}${close}{{ $i }}={{ $v }};{{ end }}`,
      () => `${open}range ${expression('list', 1)}${close}[{{ . }}]{{ else }}none{{ end }}`,
      () =>
        `${open}range $i := ${pick(['3', '0', '(len .L)'])}${close}{{ $i }}{{ if eq $i 1 }}{{ continue }}{{ end }}!{{ end }}`,
      () =>
        `${open}range $k, $v := ${expression('map', 1)}${close}{{ if eq $k "k" }}{{ break }}{{ end }}{{ $k }}{{ end }}`,
      () =>
        `${open}with ${expression(anyKind(), 1)}${close}<{{ . }}>{{ else with ${expression(anyKind(), 1)} }}({{ . }}){{ else }}none{{ end }}`,
      () => `${open}block "b${++defined}" ${expression(anyKind(), 1)}${close}[{{ . }}]{{ end }}`,
      // Of keys that exist: a missing key is nil in Go's interface maps but a typed zero in istiod's structs.
      () =>
        `${open}index ${pick(['.Nested "M" "inner"', '.Nested "L" 1', '.M "k"', '.L 0', '(dict "a" (list 1 2)) "a" 1', '"é" 1', '(list 1 (list 2 3)) 1 0'])}${close}`,
      () =>
        `${open}${pick(['eq', 'ne', 'lt', 'le', 'gt', 'ge'])} ${expression(pick<Kind>(['int', 'string']), 1)} ${expression(pick<Kind>(['int', 'string']), 1)}${close}`,
      () => `${open}${pick(['and', 'or'])} ${expression(anyKind(), 1)} ${expression(anyKind(), 1)}${close}`,
      () => `${open}with ${expression(anyKind(), 1)}${close}<{{ . }}>{{ else }}empty{{ end }}`,
      () =>
        `${open}$x := ${expression(anyKind(), 1)}${close}{{ $x }}|{{ $x = ${expression('string', 2)} }}{{ $x }}`,
      () =>
        `${open}range $i, $v := .L${close}{{ $.S }}:{{ $i }}{{ range .Nested.L }}{{ if eq . "y" }}{{ break }}{{ end }}{{ $v }}{{ . }}{{ end }};{{ end }}`,
      () =>
        `{{ $x := ${expression(anyKind(), 1)} }}{{ if ${expression('bool', 1)} }}{{ $x = ${expression(anyKind(), 1)} }}{{ end }}{{ $x }}`,
      () => `${open}with $y := ${expression(anyKind(), 1)}${close}{{ $y }}/{{ . }}{{ end }}`,
      () =>
        `${open}range $k, $v := .Tricky${close}{{ if hasPrefix "n" $k }}{{ continue }}{{ end }}{{ $k }}={{ $v | quote }},{{ end }}`,
      () =>
        `${open}if and ${expression(anyKind(), 1)} (not ${expression(anyKind(), 1)})${close}yes{{ else }}no{{ end }}`,
      // A comment must touch its delimiters, or be set off from them by trim markers.
      () => pick(['{{/* a comment */}}', '{{- /* a comment */ -}}']),
      // define only at the top level, and each name once.
      () =>
        depth === 0
          ? `{{ define "t${++defined}" }}[{{ . }}]{{ end }}{{ template "t${defined}" ${expression('string', 1)} }}`
          : `${open}${expression('string', 1)}${close}`,
    ])();
  };
  let defined = 0;

  const statements = (depth: number): string =>
    Array.from({ length: 1 + Math.floor(next() * 3) }, () =>
      next() < 0.3
        ? pick(['text ', '\n', ' - ', 'a\tb'])
        : next() < 0.03
          ? pick(BROKEN_ACTIONS)
          : action(depth),
    ).join('');

  return () => {
    defined = 0;
    return statements(0);
  };
}

/** istiod's functions that template.go has too (library calls there), as meshrev's custom templates get them. */
const ISTIO_LIBRARY_FUNCTIONS: FuncMap = { toYaml: ISTIO_FUNCTIONS['toYaml']! };

function meshrevAnswer(c: TemplateCase): TemplateResult {
  let template;
  try {
    template = parseGoTemplate('t', c.template, { funcNames: Object.keys(ISTIO_LIBRARY_FUNCTIONS) });
  } catch (error) {
    return { parseError: error instanceof Error ? error.message : String(error) };
  }
  try {
    return { output: template.execute(structuredClone(c.data), ISTIO_LIBRARY_FUNCTIONS) };
  } catch (error) {
    return { execError: error instanceof Error ? error.message : String(error) };
  }
}

const goBinary = goBinaryArgument('template');
const seed = option('--seed', 1);
const nextTemplate = generator(random(seed));
const cases: TemplateCase[] = Array.from({ length: option('--cases', 5_000) }, () => ({
  template: nextTemplate(),
  data: DATA,
}));
const answers = askGo<TemplateResult>(goBinary, ['template'], cases);

/**
 * Differences meshrev has on purpose, each with how to recognise it; the README lists them. Go's untyped nil (what
 * `first` gives for an empty list, or `coalesce` when nothing is set) is a missing value here, as a missing field
 * is: Go prints it as <no value> (<nil> inside print and printf, escaped by html, js and urlquery) and refuses it
 * as an argument, where meshrev prints "" and passes it on as a typed zero. A string cut inside a character keeps
 * Go's partial bytes, which a JavaScript string cannot hold.
 */
const GO_NIL_PRINTED =
  /<no value>|<nil>|%!\w\(<nil>\)|\\u003Cno value\\u003E|%3Cno\+value%3E|&lt;no value&gt;/g;
const KNOWN_DIFFERENCES: ReadonlyArray<[string, (go: TemplateResult, meshrev: TemplateResult) => boolean]> = [
  [
    'Go prints nil',
    (go, meshrev) =>
      go.output !== undefined &&
      meshrev.output !== undefined &&
      go.output.replace(GO_NIL_PRINTED, '') === meshrev.output.replace(GO_NIL_PRINTED, ''),
  ],
  [
    'Go refuses nil as an argument',
    (go, meshrev) =>
      meshrev.output !== undefined &&
      /invalid value; expected|nil pointer dereference|on zero Value|invalid type for comparison/.test(
        go.execError ?? '',
      ),
  ],
  ['a character cut in two', (_go, meshrev) => meshrev.output?.includes('\uFFFD') === true],
  // Go's static types: sprig's arithmetic gives int64 and its string functions []string, JSON numbers are float64;
  // JSON values here carry none of that, so only printf's %T and error texts (and typeOf) can differ.
  [
    "Go's static types",
    (go, meshrev) =>
      go.output !== undefined &&
      go.output
        .replace(/\bint64\b/g, 'int')
        .replace(/\[\]string\b/g, '[]interface {}')
        .replace(/float64=(-?\d+)\)/g, 'int=$1)') === meshrev.output,
  ],
];

let mismatches = 0;
const known = new Map<string, number>();
const counts = { output: 0, parseError: 0, execError: 0 };
cases.forEach((c, i) => {
  const expected = answers[i] ?? {};
  const actual = meshrevAnswer(c);
  const outcome = (r: TemplateResult) =>
    r.output !== undefined ? 'output' : r.parseError !== undefined ? 'parseError' : 'execError';
  counts[outcome(expected)]++;
  // Outputs must be equal; for failures, failing at the same stage is enough (messages are compared by the unit tests).
  const same =
    outcome(expected) === outcome(actual) &&
    (expected.output === undefined || expected.output === actual.output);
  if (same) return;
  const difference = KNOWN_DIFFERENCES.find(([, matches]) => matches(expected, actual))?.[0];
  if (difference !== undefined) {
    known.set(difference, (known.get(difference) ?? 0) + 1);
    return;
  }
  if (++mismatches <= option('--show', 20)) {
    if (process.argv.includes('--brief')) {
      console.log(
        JSON.stringify(c.template),
        '\n   go',
        JSON.stringify(expected),
        '\n   ts',
        JSON.stringify(actual),
      );
      return;
    }
    console.log(
      `mismatch: ${JSON.stringify(c.template)}\n  go:      ${JSON.stringify(expected)}\n  meshrev: ${JSON.stringify(actual)}`,
    );
  }
});
console.log(
  `template: ${cases.length} cases (seed ${seed}; ${counts.output} rendered, ${counts.parseError} refused by the parser, ` +
    `${counts.execError} failed executing), ${mismatches} differ from Go` +
    (known.size > 0
      ? `; known differences: ${[...known].map(([what, n]) => `${what} ${n}`).join(', ')}`
      : ''),
);
process.exitCode = mismatches === 0 ? 0 : 1;
