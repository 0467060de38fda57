// Go text/template semantics as documented at https://pkg.go.dev/text/template (and sprig's / Helm's
// function docs), checked against meshrev's TypeScript implementation. Where meshrev deliberately differs
// (JSON-shaped data, missing values as typed zeros), the test says so.
import {
  GoTemplateError,
  SPRIG_FUNCS,
  goYaml,
  parseGoTemplate,
  type FuncMap,
} from '../../../../src/injector/engine/go-template/index.js';

function render(text: string, data: unknown = {}, funcs?: FuncMap, funcNames?: readonly string[]): string {
  const names = funcNames ?? (funcs ? Object.keys(funcs) : undefined);
  return parseGoTemplate('t', text, names ? { funcNames: names } : undefined).execute(data, funcs);
}

function renderError(
  text: string,
  data: unknown = {},
  options?: Parameters<typeof parseGoTemplate>[2],
): string {
  try {
    parseGoTemplate('t', text, options).execute(data);
  } catch (error) {
    expect(error).toBeInstanceOf(GoTemplateError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} to fail`);
}

function parseError(text: string, funcNames?: readonly string[]): string {
  try {
    parseGoTemplate('t', text, funcNames ? { funcNames } : undefined);
  } catch (error) {
    expect(error).toBeInstanceOf(GoTemplateError);
    return (error as Error).message;
  }
  throw new Error(`expected ${JSON.stringify(text)} not to parse`);
}

describe('text, trim markers and comments', () => {
  test.each([
    ['plain text passes through', 'a b\n c', 'a b\n c'],
    ['{{- trims all whitespace before the action, newlines included', 'a \n\t {{- "b" }}', 'ab'],
    ['-}} trims all whitespace after the action', '{{ "a" -}} \n\n b', 'ab'],
    ['both markers', 'x \n {{- "y" -}} \n z', 'xyz'],
    ['a trim marker needs the space: {{-1}} is the number -1', 'a {{-1}} b', 'a -1 b'],
    ['a comment prints nothing', 'a{{/* note */}}b', 'ab'],
    ['a trimmed comment removes the whitespace around it', 'a \n {{- /* note */ -}} \n b', 'ab'],
    ['a comment may span lines', 'a{{/* one\ntwo */}}b', 'ab'],
    ['an action may span lines (Go 1.16+)', '{{ print\n  "a"\n  "b" }}', 'ab'],
    ['}} in a string does not end the action', '{{ "}}" }}', '}}'],
  ])('%s', (_name, text, expected) => {
    expect(render(text)).toBe(expected);
  });
});

describe('data access', () => {
  const data = {
    spec: {
      serviceAccountName: 'sa',
      dnsPolicy: 'ClusterFirst',
      hostIPC: true,
      containers: [{ name: 'app' }],
    },
    url: 'http://x',
    id: 7,
    podIP: '10.0.0.1',
    Exact: 'exact wins',
    exact: 'json spelling',
    proxyConfig: {
      concurrency: 2,
      discoveryAddress: 'istiod:15012',
      holdApplicationUntilProxyStarts: { value: true },
    },
    items: [{ name: 'first' }, { name: 'second' }],
  };

  test.each([
    ['dot is the data', '{{ .Id }}', '7'],
    ['Spec resolves to the JSON key spec', '{{ .Spec.ServiceAccountName }}', 'sa'],
    ['DNSPolicy resolves to dnsPolicy', '{{ .Spec.DNSPolicy }}', 'ClusterFirst'],
    ['HostIPC resolves to hostIPC', '{{ .Spec.HostIPC }}', 'true'],
    ['URL resolves to url', '{{ .URL }}', 'http://x'],
    ['ID resolves to id', '{{ .ID }}', '7'],
    ['PodIP resolves to podIP', '{{ .PodIP }}', '10.0.0.1'],
    ['the exact key is tried before the JSON spelling', '{{ .Exact }}', 'exact wins'],
    ['a protobuf getter GetX reads field X', '{{ .ProxyConfig.GetDiscoveryAddress }}', 'istiod:15012'],
    [
      'GetValue on a number returns the number (wrapper types)',
      '{{ .ProxyConfig.Concurrency.GetValue }}',
      '2',
    ],
    ['Value on a number returns the number', '{{ .ProxyConfig.Concurrency.Value }}', '2'],
    [
      'GetValue on an object reads its value key',
      '{{ .ProxyConfig.HoldApplicationUntilProxyStarts.GetValue }}',
      'true',
    ],
    ['$ is the data inside range', '{{ range .Items }}{{ $.Id }}{{ .Name }} {{ end }}', '7first 7second '],
    ['a variable with a field chain', '{{ $s := .Spec }}{{ $s.ServiceAccountName }}', 'sa'],
    ['a field of a parenthesised pipeline', '{{ (index .Items 1).Name }}', 'second'],
    ['a field chain of a function result', '{{ (dict "a" (dict "b" "deep")).a.b }}', 'deep'],
    ['a missing field is empty, not an error', '{{ .Nope }}', ''],
    ['fields of a missing value are empty too', '{{ .Nope.Deeper.Still }}', ''],
    ['a missing field is false in if', '{{ if .Spec.HostNetwork }}yes{{ else }}no{{ end }}', 'no'],
  ])('%s', (_name, text, expected) => {
    expect(render(text, data)).toBe(expected);
  });

  test.each([
    ['a field of a string', '{{ .Spec.ServiceAccountName.Foo }}', "can't evaluate field Foo in type string"],
    ['a field of a number', '{{ .Id.Foo }}', "can't evaluate field Foo in type int"],
    ['a field of a slice', '{{ .Items.Name }}', "can't evaluate field Name in type []interface {}"],
    ['arguments to a plain field', '{{ .Id 1 }}', 'Id is not a method but has arguments'],
    ['a value piped into a plain field', '{{ 1 | .Id }}', 'Id is not a method but has arguments'],
  ])('%s is an execution error', (_name, text, message) => {
    expect(renderError(text, data)).toContain(message);
  });
});

describe('printing values', () => {
  test.each([
    ['a string as is', 'x y', 'x y'],
    ['an integer without decimal point', 42, '42'],
    ['a negative integer', -3, '-3'],
    ['an integral float as an integer (JSON numbers)', 1000000, '1000000'],
    ['a fraction in shortest form', 1.5, '1.5'],
    ['0.1', 0.1, '0.1'],
    ['a small float in %g exponent form', 1e-7, '1e-07'],
    ['a large non-integral float in %g exponent form', 1234567.5, '1.2345675e+06'],
    ['a float below 1e6 in plain form', 123456.5, '123456.5'],
    ['+Inf', Infinity, '+Inf'],
    ['-Inf', -Infinity, '-Inf'],
    ['NaN', NaN, 'NaN'],
    ['true', true, 'true'],
    ['false', false, 'false'],
    ['undefined as empty (typed zero value; Go would print <no value> for a missing map key)', undefined, ''],
    ['null as empty at the top level', null, ''],
    ['a slice as [a b c]', ['a', 'b', 'c'], '[a b c]'],
    ['nested slices', [[1, 2], []], '[[1 2] []]'],
    ['a map with sorted keys', { b: 2, a: 'x', c: [true] }, 'map[a:x b:2 c:[true]]'],
    ['string keys sort as strings, not numbers', { '10': 'ten', '9': 'nine' }, 'map[10:ten 9:nine]'],
    ['nil inside a collection as <nil>', [null, 1], '[<nil> 1]'],
    ['an empty map', {}, 'map[]'],
  ])('%s', (_name, value, expected) => {
    expect(render('{{ .V }}', { V: value })).toBe(expected);
  });

  test('printing a function value is an error (a function is still true in if)', () => {
    expect(renderError('{{ .F }}', { F: () => 1 })).toContain("can't print {{.F}} of type func");
    expect(render('{{ if .F }}set{{ end }}', { F: () => 1 })).toBe('set');
  });
});

describe('truthiness in if, with, and, or, not', () => {
  test.each([
    [false, 'F'],
    [true, 'T'],
    [0, 'F'],
    [0.5, 'T'],
    [-1, 'T'],
    ['', 'F'],
    ['0', 'T'],
    ['false', 'T'],
    [null, 'F'],
    [undefined, 'F'],
    [[], 'F'],
    [[0], 'T'],
    [{}, 'F'],
    [{ a: 0 }, 'T'],
  ])('%j is %s', (value, expected) => {
    expect(render('{{ if .V }}T{{ else }}F{{ end }}', { V: value })).toBe(expected);
    expect(render('{{ if not .V }}F{{ else }}T{{ end }}', { V: value })).toBe(expected);
  });
});

describe('variables', () => {
  test.each([
    ['declare and use', '{{ $x := "a" }}{{ $x }}', 'a'],
    ['a declaration prints nothing', '[{{ $x := 5 }}]', '[]'],
    [
      'assignment updates the variable in the enclosing scope',
      '{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }}',
      '2',
    ],
    [
      'a declaration inside if shadows until its end',
      '{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}',
      '21',
    ],
    [
      'a variable declared in an if pipeline is visible in else',
      '{{ if $v := .Missing }}{{ $v }}{{ else }}[{{ $v }}]{{ end }}',
      '[]',
    ],
    ['with declares its variable', '{{ with $v := .A }}{{ $v }}{{ . }}{{ end }}', 'aa'],
    ['$ is the data', '{{ $.A }}', 'a'],
    [
      'assigning in range accumulates',
      '{{ $n := 0 }}{{ range .L }}{{ $n = add $n . }}{{ end }}{{ $n }}',
      '6',
    ],
    ['a declaration in a parenthesised pipeline', '{{ ($y := 3) }}{{ $y }}', '33'],
  ])('%s', (_name, text, expected) => {
    expect(render(text, { A: 'a', L: [1, 2, 3] })).toBe(expected);
  });

  test('a variable is out of scope after its {{end}} (parse error, as in Go)', () => {
    expect(parseError('{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}')).toBe(
      'template: t:1: undefined variable "$x"',
    );
  });

  test('range variables are out of scope after the range', () => {
    expect(parseError('{{ range $i, $e := .L }}{{ end }}{{ $e }}')).toContain('undefined variable "$e"');
  });

  test('assigning an undeclared variable fails when executed (Go checks at run time)', () => {
    expect(renderError('{{ $x = 1 }}')).toContain('undefined variable: $x');
  });
});

describe('if, else if, with, else with', () => {
  test.each([
    ['if true', '{{ if .T }}yes{{ end }}', 'yes'],
    ['if false without else', '[{{ if .F }}yes{{ end }}]', '[]'],
    ['else', '{{ if .F }}yes{{ else }}no{{ end }}', 'no'],
    [
      'else if chain picks the first true branch',
      '{{ if .F }}1{{ else if .F }}2{{ else if .T }}3{{ else }}4{{ end }}',
      '3',
    ],
    ['else if chain falls to else', '{{ if .F }}1{{ else if .F }}2{{ else }}4{{ end }}', '4'],
    ['with sets dot', '{{ with .M }}{{ .k }}{{ end }}', 'v'],
    ['with skips an empty value', '[{{ with .E }}x{{ end }}]', '[]'],
    ['with else keeps the outer dot', '{{ with .E }}x{{ else }}{{ .M.k }}{{ end }}', 'v'],
    ['else with (Go 1.23)', '{{ with .E }}a{{ else with .M }}{{ .k }}{{ else }}c{{ end }}', 'v'],
    ['if on a pipeline', '{{ if eq .M.k "v" }}match{{ end }}', 'match'],
  ])('%s', (_name, text, expected) => {
    expect(render(text, { T: true, F: false, M: { k: 'v' }, E: '' })).toBe(expected);
  });
});

describe('range', () => {
  const data = { L: ['a', 'b', 'c'], M: { z: 1, a: 2, m: 3 }, E: [], N: 3 };
  test.each([
    ['over a slice, dot is the element', '{{ range .L }}{{ . }}{{ end }}', 'abc'],
    ['index and element', '{{ range $i, $e := .L }}{{ $i }}={{ $e }} {{ end }}', '0=a 1=b 2=c '],
    ['one variable is the element', '{{ range $e := .L }}{{ $e }}{{ end }}', 'abc'],
    ['over a map in sorted key order', '{{ range $k, $v := .M }}{{ $k }}:{{ $v }} {{ end }}', 'a:2 m:3 z:1 '],
    ['over a map, dot is the value', '{{ range .M }}{{ . }}{{ end }}', '231'],
    ['over an integer (Go 1.22)', '{{ range 3 }}{{ . }}{{ end }}', '012'],
    ['over an integer from data', '{{ range $i := .N }}{{ $i }}{{ end }}', '012'],
    ['over zero runs else', '{{ range 0 }}x{{ else }}none{{ end }}', 'none'],
    ['else on an empty slice', '{{ range .E }}x{{ else }}empty{{ end }}', 'empty'],
    ['else on a missing value', '{{ range .Missing }}x{{ else }}missing{{ end }}', 'missing'],
    ['break', '{{ range .L }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}', 'a'],
    ['continue', '{{ range .L }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}', 'ac'],
    [
      'break leaves only the inner range',
      '{{ range 2 }}[{{ range $.L }}{{ break }}{{ end }}]{{ end }}',
      '[][]',
    ],
    ['nested ranges with $', '{{ range $x := .L }}{{ range $.N }}{{ $x }}{{ end }}{{ end }}', 'aaabbbccc'],
    [
      'assign form of range variables',
      '{{ $i := 0 }}{{ $e := "" }}{{ range $i, $e = .L }}{{ end }}{{ $i }}{{ $e }}',
      '2c',
    ],
  ])('%s', (_name, text, expected) => {
    expect(render(text, data)).toBe(expected);
  });

  test.each([
    ['a string', '{{ range "abc" }}{{ end }}', "range can't iterate over abc"],
    ['a float', '{{ range 1.5 }}{{ end }}', "range can't iterate over 1.5"],
    [
      'an integer with two variables',
      '{{ range $i, $e := 3 }}{{ end }}',
      "can't use 3 to iterate over more than one variable",
    ],
  ])('ranging over %s is an execution error', (_name, text, message) => {
    expect(renderError(text)).toContain(message);
  });
});

describe('define, template and block', () => {
  test.each([
    [
      'template calls a definition with a new dot',
      '{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" .A }}',
      '[1]',
    ],
    ['$ in a called template is its dot', '{{ define "x" }}{{ $ }}{{ end }}{{ template "x" 5 }}', '5'],
    [
      'template without pipeline has an empty dot',
      '{{ define "x" }}[{{ . }}]{{ end }}{{ template "x" }}',
      '[]',
    ],
    ['definitions may come after use', '{{ template "later" . }}{{ define "later" }}{{ .A }}{{ end }}', '1'],
    ['block defines and executes', '{{ block "b" .A }}<{{ . }}>{{ end }}', '<1>'],
    [
      'definitions call each other',
      '{{ define "a" }}a{{ template "b" }}{{ end }}{{ define "b" }}b{{ end }}{{ template "a" }}',
      'ab',
    ],
    [
      'recursion with a base case',
      '{{ define "r" }}{{ if . }}{{ len . }}{{ template "r" (rest .) }}{{ end }}{{ end }}{{ template "r" .L }}',
      '321',
    ],
    ['a template consisting of definitions only runs its namesake', '{{ define "t" }}main{{ end }}', 'main'],
  ])('%s', (_name, text, expected) => {
    expect(render(text, { A: 1, L: [1, 2, 3] })).toBe(expected);
  });

  test('an undefined template is an execution error', () => {
    expect(renderError('{{ template "nope" }}')).toBe(
      'template: t:1:0: executing "t" at <{{template "nope"}}>: template "nope" not defined',
    );
  });

  test('errors inside a definition name it', () => {
    expect(renderError('{{ define "inner" }}{{ .A.B }}{{ end }}{{ template "inner" . }}', { A: 'x' })).toBe(
      'template: t:1:23: executing "inner" at <.A.B>: can\'t evaluate field B in type string',
    );
  });

  test('two non-empty definitions of one name are a parse error', () => {
    expect(parseError('{{ define "a" }}x{{ end }}{{ define "a" }}y{{ end }}')).toContain(
      'multiple definition of template "a"',
    );
  });
});

describe('pipelines and literals', () => {
  test.each([
    ['the previous result is the last argument', '{{ "b" | printf "%s-%s" "a" }}', 'a-b'],
    ['a chain of stages', '{{ "  x " | trim | upper | quote }}', '"X"'],
    ['parenthesised pipelines as arguments', '{{ printf "%s%s" (print "a") ("b" | upper) }}', 'aB'],
    ['a function without arguments used as an argument is called', '{{ len list }}', '0'],
    ['interpreted string escapes', '{{ "a\\tb\\n\\"c\\" \\\\ \\u00e9 \\x41 \\101" }}', 'a\tb\n"c" \\ é A A'],
    ['\\x bytes form UTF-8', '{{ "\\xc3\\xa9" }}', 'é'],
    ['a raw string keeps backslashes', '{{ `a\\n{{b}}` }}', 'a\\n{{b}}'],
    ['a raw string may span lines', '{{ `a\nb` }}', 'a\nb'],
    [
      'decimal, hex, octal, binary, underscores',
      '{{ 42 }} {{ 0x1F }} {{ 0o17 }} {{ 017 }} {{ 0b101 }} {{ 1_000 }}',
      '42 31 15 15 5 1000',
    ],
    ['signs', '{{ -5 }} {{ +5 }}', '-5 5'],
    ['floats', '{{ 1.5 }} {{ .5 }} {{ 1e3 }} {{ 2.5e-3 }} {{ 0x1p-2 }}', '1.5 0.5 1000 0.0025 0.25'],
    ['a rune constant is its code point', "{{ 'a' }} {{ '\\n' }} {{ '\\u00e9' }}", '97 10 233'],
    ['booleans', '{{ true }} {{ false }}', 'true false'],
    ['nil as an argument', '{{ print nil }}', '<nil>'],
    ['dot as a command', '{{ . }}', 'map[]'],
  ])('%s', (_name, text, expected) => {
    expect(render(text)).toBe(expected);
  });

  test.each([
    ['nil as a command', '{{ nil }}', 'nil is not a command'],
    ['arguments to a literal', '{{ 3 4 }}', "can't give argument to non-function 3"],
    ['arguments to a variable', '{{ $x := 1 }}{{ $x 2 }}', "can't give argument to non-function $x"],
  ])('%s is an execution error', (_name, text, message) => {
    expect(renderError(text)).toContain(message);
  });
});

describe('builtins', () => {
  const data = { L: ['a', 'b', 'c'], M: { k: 'v', n: { x: 1 } }, S: 'hello', Z: 0 };
  test.each([
    ['and returns the first false argument', '{{ and 1 0 2 }}', '0'],
    ['and returns the last argument when all are true', '{{ and 1 "x" 2 }}', '2'],
    ['or returns the first true argument', '{{ or 0 "" "z" 3 }}', 'z'],
    ['or returns the last argument when all are false', '[{{ or 0 "" }}]', '[]'],
    ['and short-circuits (fail is never called)', '{{ and false (fail "boom") }}', 'false'],
    ['or short-circuits', '{{ or 1 (fail "boom") }}', '1'],
    ['and takes the piped value last', '{{ 5 | and 1 }}', '5'],
    ['not', '{{ not 0 }} {{ not "x" }}', 'true false'],
    ['len of a string, slice and map', '{{ len .S }} {{ len .L }} {{ len .M }}', '5 3 2'],
    ['len of a missing value is 0', '{{ len .Missing }}', '0'],
    ['index into a slice', '{{ index .L 1 }}', 'b'],
    ['index into a map', '{{ index .M "k" }}', 'v'],
    ['index with several keys', '{{ index .M "n" "x" }}', '1'],
    ['index of a missing map key is the zero value', '[{{ index .M "nope" }}]', '[]'],
    ['index into a string yields the byte', '{{ index .S 1 }}', '101'],
    // slice is sprig's (it shadows Go's builtin in istiod's function map): lists only, an empty list gives nil.
    ['slice of a slice', '{{ slice .L 1 }} {{ slice .L 1 2 }} {{ slice .L }}', '[b c] [b] [a b c]'],
    ['slice reads two indexes only', '{{ slice .L 0 1 2 }}', '[a]'],
    ['slice of an empty list is nil', '{{ slice (list) | toJson }}', 'null'],
    // Go strings are UTF-8 bytes: len counts them, index gives one.
    ['len of a string counts UTF-8 bytes', '{{ len "é😀" }}', '6'],
    ['index into a string yields a UTF-8 byte', '{{ index "é" 0 }} {{ index "é" 1 }}', '195 169'],
    ['index with a missing key reads the zero-string key', '[{{ index .M .Missing }}]', '[]'],
    [
      'print treats a missing value as an empty string (typed zero; Go prints <nil> for untyped nil)',
      '{{ print .Missing 1 }}',
      '1',
    ],
    ['print adds spaces between operands when neither is a string', '{{ print 1 2 "a" "b" 3 }}', '1 2ab3'],
    ['println always separates and ends the line', '{{ println 1 "a" }}', '1 a\n'],
    ['eq with several alternatives', '{{ eq .S "x" "hello" }} {{ eq 1 2 3 }}', 'true false'],
    ['eq compares integers and floats numerically', '{{ eq 2 2.0 }}', 'true'],
    [
      'eq of a missing value and a zero value (typed zero)',
      '{{ eq .Missing "" }} {{ eq .Missing 0 }} {{ eq .Missing false }}',
      'true true true',
    ],
    ['eq of a missing value and nil', '{{ eq .Missing nil }}', 'true'],
    ['ne', '{{ ne 1 2 }} {{ ne "a" "a" }}', 'true false'],
    [
      'lt, le, gt, ge on numbers',
      '{{ lt 1 2 }} {{ le 2 2 }} {{ gt 1 2 }} {{ ge 2 3 }}',
      'true true false false',
    ],
    ['lt on strings', '{{ lt "a" "b" }} {{ lt "b" "a" }}', 'true false'],
    [
      'html escapes the five special characters',
      `{{ html "<a href=\\"x\\">&'" }}`,
      '&lt;a href=&#34;x&#34;&gt;&amp;&#39;',
    ],
    [
      'js escapes quotes, angle brackets, = and controls',
      `{{ js "a'b\\"<=>&\\n" }}`,
      'a\\\'b\\"\\u003C\\u003D\\u003E\\u0026\\u000A',
    ],
    ['urlquery escapes as a query component', '{{ urlquery "a b&c=d/é" }}', 'a+b%26c%3Dd%2F%C3%A9'],
    ['js escapes non-printable runes as \\uXXXX and keeps printable ones', '{{ js "é\u2028" }}', 'é\\u2028'],
    ['html of several operands uses fmt.Sprint', '{{ html 1 2 }}', '1 2'],
  ])('%s', (_name, text, expected) => {
    expect(render(text, data)).toBe(expected);
  });

  test('call invokes a function value', () => {
    expect(render('{{ call .F 2 3 }}', { F: (a: unknown, b: unknown) => Number(a) * Number(b) })).toBe('6');
  });

  test.each([
    ['index out of range', '{{ index .L 5 }}', 'error calling index: index out of range: 5'],
    ['a negative index', '{{ index .L -1 }}', 'index out of range: -1'],
    ['a string key into a slice', '{{ index .L "a" }}', 'cannot index slice/array with type string'],
    ['an int key into a map', '{{ index .M 1 }}', 'value has type int; should be string'],
    ['an inverted slice', '{{ slice .L 2 1 }}', 'slice index out of bounds'],
    [
      'slice of a string (sprig slices lists only)',
      '{{ slice .S 1 3 }}',
      'list should be type of slice or array but string',
    ],
    ['index past the last byte of a string', '{{ index "é" 2 }}', 'index out of range: 2'],
    ['substr past the end of its string', '{{ substr 3 2 "abc" }}', 'slice bounds out of range [3:2]'],
    ['len of a number', '{{ len 3 }}', 'len of type int'],
    ['eq of a string and a number', '{{ eq "1" 1 }}', 'incompatible types for comparison'],
    ['eq of slices', '{{ eq .L .L }}', 'non-comparable type'],
    ['lt of booleans', '{{ lt true false }}', 'invalid type for comparison'],
    ['not with two arguments', '{{ not 1 2 }}', 'wrong number of args for not: want 1 got 2'],
    ['and without arguments', '{{ and }}', 'wrong number of args for and: want at least 1 got 0'],
    ['eq with one argument', '{{ eq 1 }}', 'missing argument for comparison'],
  ])('%s is an execution error', (_name, text, message) => {
    expect(renderError(text, data)).toContain(message);
  });
});

describe('printf', () => {
  test.each([
    ['%s %d %v', '"%s %d %v"', '"a" 3 true', 'a 3 true'],
    ['%q quotes a string Go-style', '"%q"', '"a\\"b\\n"', '"a\\"b\\n"'],
    ['%t', '"%t"', 'false', 'false'],
    ['%f, %.2f, %6.2f', '"%f|%.2f|%6.2f"', '3.14159 3.14159 3.14159', '3.141590|3.14|  3.14'],
    ['%.0f rounds half to even', '"%.0f %.0f %.0f"', '0.5 1.5 2.5', '0 2 2'],
    ['%.2f rounds the exact binary value', '"%.2f"', '1.005', '1.00'],
    [
      '%e and %g',
      '"%e %g %g %.3g"',
      '123456.0 0.00001234 1e21 1234.5678',
      '1.234560e+05 1.234e-05 1e+21 1.23e+03',
    ],
    ['%x %X %o %b %c %U', '"%x %X %o %b %c %U"', '255 255 8 5 65 65', 'ff FF 10 101 A U+0041'],
    ['%#x %#o', '"%#x %#o"', '255 8', '0xff 010'],
    ['%x of a string is hex bytes', '"%x"', '"hi"', '6869'],
    ['width and left alignment', '"[%5d][%-5s][%5s]"', '42 "ab" "ab"', '[   42][ab   ][   ab]'],
    ['zero padding goes after the sign', '"%05d %+d %+05d"', '-42 5 7', '-0042 +5 +0007'],
    ['%% is a literal percent', '"100%%"', '', '100%'],
    ['%v of a map and a slice', '"%v %v"', '.M .L', 'map[a:1 b:[x y]] [1 2]'],
    ['%d of a slice applies per element', '"%d"', '.L', '[1 2]'],
    ['%s of a number is a bad verb', '"%s"', '3', '%!s(int=3)'],
    ['%d of a string is a bad verb', '"%d"', '"x"', '%!d(string=x)'],
    ['%d of a fraction is a bad verb', '"%d"', '1.5', '%!d(float64=1.5)'],
    ['a missing operand', '"%d %d"', '1', '1 %!d(MISSING)'],
    ['an extra operand', '"%d"', '1 "a"', '1%!(EXTRA string=a)'],
    ['explicit argument indexes', '"%[2]s %[1]s"', '"a" "b"', 'b a'],
    ['* width', '"%*d"', '5 42', '   42'],
    ['%v of nil', '"%v"', 'nil', '<nil>'],
    [
      '%#v is Go syntax',
      '"%#v %#v %#v"',
      '"s" .L .M',
      '"s" []interface {}{1, 2} map[string]interface {}{"a":1, "b":[]interface {}{"x", "y"}}',
    ],
    [
      '%q of an integer, %#U, %+q, %#q',
      '"%q %#U %+q %#q"',
      '97 65 "é" "abc"',
      "'a' U+0041 'A' \"\\u00e9\" `abc`",
    ],
    ['%x of a negative number, %e and %g of zero', '"%x %e %g"', '-255 0.0 0.0', '-ff 0.000000e+00 0'],
    [
      '%.3s truncates, %08.3f pads after the sign, % d',
      '"%.3s %08.3f % d"',
      '"abcdef" -3.14159 42',
      'abc -003.142  42',
    ],
    ['a width beyond 1e6 is rejected like Go', '"%9999999d"', '1', '%!(BADWIDTH)1'],
    ['%s of a missing value is empty (typed zero)', '"[%s]"', '.Missing', '[]'],
    ['%s:%d of data fields', '"%s:%d"', '.Host .Port', 'zipkin:9411'],
  ])('%s', (_name, format, args, expected) => {
    const data = { M: { b: ['x', 'y'], a: 1 }, L: [1, 2], Host: 'zipkin', Port: 9411 };
    expect(render(`{{ printf ${format} ${args} }}`, data)).toBe(expected);
  });
});

// Found by comparing with Go's fmt (`make differential`); each expected value is what Go printed.
describe('printf, as Go prints what differed', () => {
  test.each([
    [
      '%T names the type (nil as <nil>)',
      '{{ printf "%T %T %T %T %T" 1 "a" (list) (dict) (first (list)) }}',
      'int string []interface {} map[string]interface {} <nil>',
    ],
    [
      '%+v gives a number no sign, in a map too (%+d does)',
      '{{ printf "%+v|%+v|%+d" 1 (dict "b" 0) 1 }}',
      '1|map[b:0]|+1',
    ],
    [
      'a nil element is <nil> whatever the verb and width',
      '{{ printf "%-8v|%x" (dict "n" (first (list))) (list (first (list)) 10) }}',
      'map[n       :<nil>]|[<nil> a]',
    ],
    [
      '%U reads a negative number as a uint64',
      '{{ printf "%U|%#U|%#U" -3 65 -1 }}',
      "U+FFFFFFFFFFFFFFFD|U+0041 'A'|U+FFFFFFFFFFFFFFFF",
    ],
  ])('%s', (_name, text, expected) => {
    expect(render(text)).toBe(expected);
  });
});

describe('sprig functions', () => {
  const data = { Empty: '', Name: 'n', L: [3, 1, 2], Nums: ['1', '2'], NaN: NaN };
  test.each([
    [
      'default on an empty value',
      '{{ default "x" "" }} {{ default "x" 0 }} {{ default "x" .Missing }} {{ "" | default "x" }}',
      'x x x x',
    ],
    ['default keeps a non-empty value', '{{ default "x" "y" }} {{ .Name | default "x" }}', 'y n'],
    [
      'empty',
      '{{ empty "" }} {{ empty (list) }} {{ empty (dict) }} {{ empty 0 }} {{ empty "a" }}',
      'true true true true false',
    ],
    ['coalesce returns the first non-empty value', '{{ coalesce "" 0 .Missing "a" "b" }}', 'a'],
    ['ternary', '{{ ternary "yes" "no" true }} {{ ternary "yes" "no" false }}', 'yes no'],
    ['quote skips nil and quotes each operand', '{{ quote "a" 1 .Missing }}', '"a" "1"'],
    ['quote escapes like Go %q', '{{ quote "say \\"hi\\"" }}', '"say \\"hi\\""'],
    ['squote', '{{ squote "a" }}', "'a'"],
    ['cat', '{{ cat "a" 1 nil "b" }}', 'a 1 b'],
    [
      'upper, lower, title',
      '{{ upper "abc" }} {{ lower "ABC" }} {{ title "hello world-foo" }}',
      'ABC abc Hello World-Foo',
    ],
    [
      'trim, trimAll, trimPrefix, trimSuffix',
      '[{{ trim "  a b \\n" }}] {{ trimAll "$" "$5.00$" }} {{ trimPrefix "-" "-hello" }} {{ trimSuffix "-" "hello-" }}',
      '[a b] 5.00 hello hello',
    ],
    [
      'contains takes the substring first',
      '{{ contains "cat" "catch" }} {{ contains "catch" "cat" }}',
      'true false',
    ],
    [
      'hasPrefix and hasSuffix take the affix first',
      '{{ hasPrefix "cat" "catch" }} {{ hasSuffix "ch" "catch" }}',
      'true true',
    ],
    ['replace old new source', '{{ replace " " "-" "I Am Henry VIII" }}', 'I-Am-Henry-VIII'],
    ['repeat', '{{ repeat 3 "ab" }}', 'ababab'],
    ['substr', '{{ substr 0 5 "hello world" }} {{ substr 6 -1 "hello world" }}', 'hello world'],
    ['trunc from either end', '{{ trunc 5 "hello world" }} {{ trunc -5 "hello world" }}', 'hello world'],
    // sprig cuts a Go string's bytes; a character cut in two becomes U+FFFD here (Go keeps the partial bytes).
    [
      'substr and trunc count UTF-8 bytes',
      '{{ substr 2 4 "αβγ" }} {{ trunc 4 "αβγ" }} {{ trunc -2 "αβγ" }}',
      'β αβ γ',
    ],
    ['a cut inside a character', '{{ trunc 1 "é" }}', '\uFFFD'],
    [
      'split returns a map of _N keys',
      '{{ split "$" "foo$bar$baz" }} {{ (split "$" "foo$bar")._1 }}',
      'map[_0:foo _1:bar _2:baz] bar',
    ],
    ['splitList', '{{ splitList "," "a,b,,c" }}', '[a b  c]'],
    [
      'join takes the separator first and stringifies elements',
      '{{ join "-" (list "a" 1 true) }} {{ join "," .Nums }}',
      'a-1-true 1,2',
    ],
    ['toString and toStrings', '{{ toString 5 | quote }} {{ toStrings (list 1 "a") }}', '"5" [1 a]'],
    ['indent prefixes every line', '{{ indent 2 "a\\nb" }}', '  a\n  b'],
    ['nindent starts with a newline', '{{ nindent 2 "a" }}', '\n  a'],
    ['list', '{{ list 1 "a" true }}', '[1 a true]'],
    [
      'first, last, rest, initial',
      '{{ first .L }} {{ last .L }} {{ rest .L }} {{ initial .L }}',
      '3 2 [1 2] [3 1]',
    ],
    [
      'append, prepend, concat',
      '{{ append .L 4 }} {{ prepend .L 0 }} {{ concat .L (list 9) }}',
      '[3 1 2 4] [0 3 1 2] [3 1 2 9]',
    ],
    ['append does not modify its input', '{{ $x := append .L 4 }}{{ .L }}', '[3 1 2]'],
    [
      'uniq, has, without, compact',
      '{{ uniq (list 1 1 2 1) }} {{ has 1 .L }} {{ has 5 .L }} {{ without .L 1 }} {{ compact (list 1 "" 0 "a") }}',
      '[1 2] true false [3 2] [1 a]',
    ],
    ['sortAlpha', '{{ sortAlpha (list "c" "a" "B") }}', '[B a c]'],
    [
      'dict, get, hasKey, keys, values',
      '{{ $d := dict "b" 2 "a" 1 }}{{ $d }} {{ get $d "a" }} [{{ get $d "z" }}] {{ hasKey $d "b" }} {{ keys $d }} {{ values $d }}',
      'map[a:1 b:2] 1 [] true [a b] [1 2]',
    ],
    ['dict with an odd argument count gives the last key an empty value', '{{ dict "a" }}', 'map[a:]'],
    [
      'set and unset return the dict',
      '{{ $d := dict "a" 1 }}{{ $_ := set $d "b" 2 }}{{ $d }} {{ unset $d "a" }}',
      'map[a:1 b:2] map[b:2]',
    ],
    ['pluck', '{{ pluck "a" (dict "a" 1) (dict "b" 2) (dict "a" 3) }}', '[1 3]'],
    [
      'merge keeps destination values',
      '{{ merge (dict "default" "default" "overwrite" "me" "key" true) (dict "overwrite" "overwritten" "key" false "new" 1) }}',
      'map[default:default key:true new:1 overwrite:me]',
    ],
    [
      'mergeOverwrite lets sources win',
      '{{ mergeOverwrite (dict "default" "default" "overwrite" "me" "key" true) (dict "overwrite" "overwritten" "key" false) }}',
      'map[default:default key:false overwrite:overwritten]',
    ],
    [
      'merge is deep',
      '{{ merge (dict "a" (dict "x" 1)) (dict "a" (dict "x" 2 "y" 3)) }}',
      'map[a:map[x:1 y:3]]',
    ],
    [
      'atoi, int, int64, float64',
      '{{ atoi "42" }} {{ atoi "x" }} {{ int "3.0" }} {{ int "0x1F" }} {{ int64 2.7 }} {{ float64 "1.5" }}',
      '42 0 3 31 2 1.5',
    ],
    [
      'integer arithmetic',
      '{{ add 1 2 3 }} {{ add1 5 }} {{ sub 5 3 }} {{ mul 2 3 4 }} {{ div 7 2 }} {{ mod 7 2 }} {{ max 1 5 3 }} {{ min 4 2 }}',
      '6 6 2 24 3 1 5 2',
    ],
    ['arithmetic truncates floats to integers', '{{ add 1.5 1.5 }}', '2'],
    ['b64enc and b64dec', '{{ b64enc "hello" }} {{ b64dec "aGVsbG8=" }}', 'aGVsbG8= hello'],
    [
      'toJson sorts keys and escapes HTML',
      '{{ toJson (dict "b" "<&>" "a" (list 1 2.5 nil)) }}',
      '{"a":[1,2.5,null],"b":"\\u003c\\u0026\\u003e"}',
    ],
    ['toRawJson does not escape HTML', '{{ toRawJson (dict "a" "<b>") }}', '{"a":"<b>"}'],
    [
      'toJson always escapes U+2028; a missing value stored in a dict is nil, as a missing map key is in Go',
      '{{ toJson (dict "a" "\u2028" "b" .Missing) }}',
      '{"a":"\\u2028","b":null}',
    ],
    ['toJson of an unencodable value is empty', '[{{ toJson .NaN }}]', '[]'],
    [
      'b64dec returns the decoding error as its result like sprig',
      '{{ b64dec "ab*d" }}',
      'illegal base64 data at input byte 2',
    ],
    [
      'int parses like Go base 0, so "08" is invalid (0)',
      '{{ int "08" }} {{ int "-0x10" }} {{ int true }}',
      '0 -16 1',
    ],
    [
      'toPrettyJson indents by two spaces',
      '{{ toPrettyJson (dict "a" (list 1)) }}',
      '{\n  "a": [\n    1\n  ]\n}',
    ],
    ['fromJson', '{{ (fromJson "{\\"a\\":{\\"b\\":[1,2]}}").a.b }}', '[1 2]'],
    ['fromJson of invalid JSON is nil (empty)', '[{{ fromJson "{bad" }}]', '[]'],
    [
      'typeOf',
      '{{ typeOf 1 }} {{ typeOf 1.5 }} {{ typeOf "a" }} {{ typeOf true }} {{ typeOf (list) }} {{ typeOf (dict) }}',
      'int float64 string bool []interface {} map[string]interface {}',
    ],
    [
      'kindIs and kindOf',
      '{{ kindIs "map" (dict) }} {{ kindIs "slice" "x" }} {{ kindOf (list) }}',
      'true false slice',
    ],
    [
      'deepCopy',
      '{{ $a := dict "x" (dict "y" 1) }}{{ $b := deepCopy $a }}{{ $_ := set $b.x "y" 2 }}{{ $a.x.y }}{{ $b.x.y }}',
      '12',
    ],
  ])('%s', (_name, text, expected) => {
    expect(render(text, data)).toBe(expected);
  });

  test.each([
    ['fail', '{{ fail "boom" }}', 'error calling fail: boom'],
    ['div by zero', '{{ div 1 0 }}', 'integer divide by zero'],
    ['mustFromJson of invalid JSON', '{{ mustFromJson "{bad" }}', 'error calling mustFromJson'],
    ['upper of a number (wrong argument type)', '{{ upper 3 }}', 'expected string; got int'],
  ])('%s is an execution error', (_name, text, message) => {
    expect(renderError(text)).toContain(message);
  });

  // Helm's required, toYaml and fromYaml are not sprig's: istiod's function map has only its own toYaml
  // (custom-templates.ts), so a template calling the others does not parse there either.
  test.each([
    'env',
    'expandenv',
    'now',
    'date',
    'uuidv4',
    'randAlphaNum',
    'semverCompare',
    'required',
    'toYaml',
    'fromYaml',
  ])('%s is not provided (non-deterministic, out of scope, or not in istiod)', (name) => {
    expect(Object.hasOwn(SPRIG_FUNCS, name)).toBe(false);
    expect(parseError(`{{ ${name} "x" }}`)).toBe(`template: t:1: function "${name}" not defined`);
  });
});

// Go's nil and nil slices, as sprig's list functions give them: found by comparing with Go's text/template and sprig
// (`make differential`); each expected value is what Go printed for the same template.
describe("Go's nil from sprig's functions", () => {
  test.each([
    [
      'rest and initial of an empty list are a nil slice: printed [], encoded null',
      '{{ rest (list) }} {{ toJson (rest (list)) }} {{ toJson (rest (list 1)) }} {{ initial (list) }} {{ toJson (initial (list)) }}',
      '[] null [] [] null',
    ],
    [
      'concat of nothing is a nil slice',
      '{{ toJson (concat (list) (list)) }} {{ concat (list) }}',
      'null []',
    ],
    [
      'first, last and coalesce of nothing are nil, which print prints as <nil>',
      '{{ print (first (list)) 1 }}|{{ print (last (list)) "x" }}|{{ print (coalesce "" 0) 1 }}',
      '<nil> 1|<nil>x|<nil> 1',
    ],
    [
      'sortAlpha of something other than a list is a list of it',
      '{{ sortAlpha "b" }} {{ sortAlpha (first (list)) }} {{ sortAlpha (list "b" "a") }}',
      '[b] [<nil>] [a b]',
    ],
    [
      'html, js and urlquery print nil as <no value>',
      '{{ html (first (list)) }} {{ js (first (list)) }} {{ urlquery (first (list)) }}',
      '&lt;no value&gt; \\u003Cno value\\u003E %3Cno+value%3E',
    ],
    [
      'merge never merges nil in; mergeOverwrite overwrites with it',
      '{{ merge (dict "k" "v") (dict "n" (first (list)) "k" "w") }} {{ mergeOverwrite (dict "k" "v") (dict "k" (first (list))) }}',
      'map[k:v] map[k:<nil>]',
    ],
    [
      'a dict keeps a key whose value is nil',
      '{{ len (dict "a" (first (list))) }} {{ dict "a" (first (list)) }}',
      '1 map[a:<nil>]',
    ],
    [
      'regexFindAll without a match and regexSplit with n = 0 are nil slices',
      '{{ toJson (regexFindAll "x" "abc" -1) }} {{ regexFindAll "x" "abc" -1 }} {{ toJson (regexSplit "x" "abc" 0) }}',
      'null [] null',
    ],
  ])('%s', (_name, text, expected) => {
    expect(render(text)).toBe(expected);
  });
});

test("sprig's integer arithmetic never gives JavaScript's negative zero (go-yaml would write it as -0)", () => {
  const arithmetic = SPRIG_FUNCS as Record<string, (...args: unknown[]) => unknown>;
  const results = [arithmetic['mul']!(0, -3), arithmetic['div']!(-1, 2), arithmetic['mod']!(-3, 3)];
  expect(results.map((n) => Object.is(n, -0))).toEqual([false, false, false]);
  expect(goYaml(results)).toBe('- 0\n- 0\n- 0\n');
});

// sprig's regex functions over Go's regexp (RE2 syntax, linear time: re2.ts, which re2.test.ts covers in depth).
// Here: sprig's argument order and results, how each reports a pattern that does not compile, and that their
// work counts against the template's step limit.
describe('sprig regex functions', () => {
  test.each([
    ['regexMatch', '{{ regexMatch "^[a-z]+-[0-9]+$" "asm-1233" }}', 'true'],
    ['regexMatch without a match', '{{ regexMatch "^[a-z]+$" "asm-1233" }}', 'false'],
    ['regexMatch in a pipeline', '{{ "v1.29.6" | regexMatch `^v1\\.2[0-9]` }}', 'true'],
    ['$ is the end of the text, not before a final newline', '{{ regexMatch "a$" "a\\n" }}', 'false'],
    ['regexFind', '{{ regexFind "[0-9]+" "asm-1233-2" }}', '1233'],
    ['regexFind without a match is ""', '{{ regexFind "[0-9]+" "asm" | quote }}', '""'],
    ['regexFindAll', '{{ regexFindAll "[0-9]+" "asm-1233-2" -1 }}', '[1233 2]'],
    ['regexFindAll with n', '{{ regexFindAll "[0-9]" "1234" 2 }}', '[1 2]'],
    [
      'regexFindAll without a match is empty',
      '{{ regexFindAll "x" "abc" -1 }} {{ len (regexFindAll "x" "abc" -1) }}',
      '[] 0',
    ],
    ['regexReplaceAll expands groups', '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "${1}W" }}', '-W-xxW-'],
    ['regexReplaceAll: $1W names group "1W"', '{{ regexReplaceAll "a(x*)b" "-ab-axxb-" "$1W" }}', '---'],
    [
      'regexReplaceAll with a named group',
      '{{ regexReplaceAll "(?P<rev>[0-9]+)" "asm-12" "r$rev" }}',
      'asm-r12',
    ],
    ['regexReplaceAllLiteral', '{{ regexReplaceAllLiteral "a(x*)b" "-ab-axxb-" "$1" }}', '-$1-$1-'],
    ['regexSplit', '{{ regexSplit "a*" "abaabaccadaaae" 5 }}', '[ b b c cadaaae]'],
    ['regexSplit all', '{{ regexSplit "-" "istio-proxy-1" -1 }}', '[istio proxy 1]'],
    ['regexQuoteMeta', '{{ regexQuoteMeta "1.29.6+x" }}', '1\\.29\\.6\\+x'],
    ['mustRegexFind', '{{ mustRegexFind "(?i)PROXY" "istio-proxy" }}', 'proxy'],
    [
      'a Unicode class and an astral character',
      '{{ regexFind `\\p{Greek}+` "x-αβγ-y" }} {{ regexFind "." "😀x" }}',
      'αβγ 😀',
    ],
  ])('%s', (_name, text, expected) => {
    expect(render(text)).toBe(expected);
  });

  test('a pattern that does not compile: regexMatch is false, the others fail as MustCompile or Compile', () => {
    expect(render('{{ regexMatch "(" "(" }}')).toBe('false');
    expect(renderError('{{ regexFind "(" "x" }}')).toContain(
      'error calling regexFind: regexp: Compile(`(`): error parsing regexp: missing closing ): `(`',
    );
    // MustCompile quotes with strconv.Quote when backquotes cannot hold the pattern; the parse error does not.
    expect(renderError('{{ regexReplaceAll "`(" "x" "y" }}')).toContain(
      'error calling regexReplaceAll: regexp: Compile("`("): error parsing regexp: missing closing ): ``(`',
    );
    expect(renderError('{{ mustRegexMatch "a**" "x" }}')).toContain(
      'error calling mustRegexMatch: error parsing regexp: invalid nested repetition operator: `**`',
    );
    expect(renderError('{{ mustRegexSplit "(?=x)" "x" -1 }}')).toContain(
      'error calling mustRegexSplit: error parsing regexp: invalid or unsupported Perl syntax: `(?=`',
    );
    expect(renderError('{{ regexFindAll "x" "x" "2" }}')).toContain('expected int; got string');
  });

  test('a search that backtracking engines take hours over is linear, and counts against the step limit', () => {
    const input = 'a'.repeat(5000);
    // (a|aa)*$ with a trailing b: every position is live; a backtracking engine explores 2^n paths.
    const text = '{{ regexMatch "^(a|aa)*$" .S }}';
    expect(render(text, { S: `${input}b` })).toBe('false');
    // The same search under a smaller step limit stops with the template's own limit message.
    expect(renderError(text, { S: `${input}b` }, { limits: { maxSteps: 10_000 } })).toContain(
      'execution exceeded the limit of 10000 steps',
    );
    // A replacement per position cannot build an unbounded result before the limit stops it.
    expect(
      renderError(
        '{{ regexReplaceAll "" .S .R }}',
        { S: input, R: 'x'.repeat(1000) },
        { limits: { maxSteps: 100_000 } },
      ),
    ).toContain('execution exceeded the limit of 100000 steps');
  });

  test('compiled patterns are shared between renders and templates', () => {
    const first = parseGoTemplate('a', '{{ regexFind "[0-9]+" .S }}');
    const second = parseGoTemplate('b', '{{ regexFind "[0-9]+" .S }}');
    expect(first.execute({ S: 'x12' })).toBe('12');
    expect(second.execute({ S: 'y345' })).toBe('345');
    expect(first.execute({ S: 'none' })).toBe('');
  });
});

describe('caller-supplied functions', () => {
  test('declared names parse and resolve to the functions passed to execute', () => {
    const template = parseGoTemplate('t', '{{ greet .Name }}', { funcNames: ['greet'] });
    expect(template.execute({ Name: 'a' }, { greet: (n) => `hi ${String(n)}` })).toBe('hi a');
    expect(template.execute({ Name: 'b' }, { greet: (n) => `hello ${String(n)}` })).toBe('hello b');
  });

  test('an undeclared name is a parse error', () => {
    expect(parseError('line\n  {{ greet 1 }}')).toBe('template: t:2: function "greet" not defined');
  });

  test('a declared name not supplied at execute time is an execution error', () => {
    const template = parseGoTemplate('t', '{{ greet 1 }}', { funcNames: ['greet'] });
    expect(() => template.execute({})).toThrow('"greet" is not a defined function');
  });

  test('an Error thrown by a function aborts execution naming the call', () => {
    const funcs: FuncMap = {
      boom: () => {
        throw new Error('kaput');
      },
    };
    expect(() => render('{{ boom 1 }}', {}, funcs)).toThrow(
      new GoTemplateError('template: t:1:3: executing "t" at <boom 1>: error calling boom: kaput'),
    );
  });

  test('caller functions take precedence over sprig and builtins', () => {
    const funcs: FuncMap = { contains: (s, sub) => String(s).includes(String(sub)), len: () => 99 };
    expect(render('{{ contains "catch" "cat" }} {{ len "x" }}', {}, funcs)).toBe('true 99');
  });

  test('a caller-supplied and is not short-circuited (only the builtin is)', () => {
    const seen: unknown[] = [];
    const funcs: FuncMap = { and: (...args) => (seen.push(...args), 'custom'), mark: () => 'evaluated' };
    expect(render('{{ and false (mark) }}', {}, funcs)).toBe('custom');
    expect(seen).toEqual([false, 'evaluated']);
  });

  test('a function stored in the data is a value: call invokes it, arguments to the field are an error', () => {
    const data = { Meta: { Label: (k: unknown) => `label:${String(k)}` } };
    expect(render('{{ call .Meta.Label "app" }}', data)).toBe('label:app');
    expect(renderError('{{ .Meta.Label "app" }}', data)).toContain('Label is not a method but has arguments');
  });
});

describe('parse errors', () => {
  test.each([
    ['an unclosed action', 'a {{ .X', 'template: t:1: unclosed action'],
    ['an unexpected {{end}}', 'x{{ end }}', 'template: t:1: unexpected {{end}}'],
    ['an unexpected {{else}}', '{{ else }}', 'unexpected {{else}}'],
    ['an unknown function', '{{ foo 1 }}', 'template: t:1: function "foo" not defined'],
    ['an undefined variable', '{{ $x }}', 'template: t:1: undefined variable "$x"'],
    ['a missing {{end}}', '{{ if .X }}a', 'template: t:1: unexpected EOF'],
    ['a bad number', '{{ 1x }}', 'bad number syntax: "1x"'],
    ['an illegal number', '{{ 0x }}', 'illegal number syntax: "0x"'],
    ['a complex number', '{{ 1i }}', 'complex numbers are not supported'],
    ['an unterminated string', '{{ "abc }}', 'unterminated quoted string'],
    ['a newline in a string', '{{ "a\nb" }}', 'unterminated quoted string'],
    ['an unterminated raw string', '{{ `abc }}', 'unterminated raw quoted string'],
    ['a bad escape', '{{ "\\q" }}', 'invalid syntax'],
    ['a malformed rune', "{{ 'ab' }}", 'malformed character constant'],
    ['an unclosed comment', '{{/* x }}', 'unclosed comment'],
    ['text between comment and delimiter', '{{/* x */ }}', 'comment ends before closing delimiter'],
    ['break outside range', '{{ break }}', '{{break}} outside {{range}}'],
    ['continue outside range', '{{ if true }}{{ continue }}{{ end }}', '{{continue}} outside {{range}}'],
    ['an empty if', '{{ if }}{{ end }}', 'missing value for if'],
    ['an empty action', '{{ }}', 'missing value for command'],
    ['a literal as a later pipeline stage', '{{ .X | "a" }}', 'non executable command in pipeline stage 2'],
    ['an unclosed parenthesis', '{{ (print 1 }}', 'unclosed left paren'],
    ['an unexpected right parenthesis', '{{ print 1) }}', 'unexpected right paren'],
    ['three range variables', '{{ range $i, $e, $f := .L }}{{ end }}', 'too many declarations in range'],
    ['two variables outside range', '{{ $a, $b := 1 }}', 'too many declarations in command'],
    ['define below the top level', '{{ if true }}{{ define "x" }}{{ end }}{{ end }}', 'unexpected <define>'],
    ['a non-string template name', '{{ template .X }}', 'unexpected ".X" in template clause'],
    ['a field after a literal', '{{ "a".B }}', 'unexpected . after term'],
    ['a bad character', '{{ .X# }}', "bad character U+0023 '#'"],
    ['else if inside range', '{{ range .L }}{{ else if .X }}{{ end }}', 'unexpected <if>'],
    ['a missing end after else', '{{ if .X }}a{{ else }}b', 'unexpected EOF'],
    ['deep nesting', `{{ ${'('.repeat(300)}1${')'.repeat(300)} }}`, 'nesting exceeds'],
  ])('%s', (_name, text, message) => {
    expect(parseError(text)).toContain(message);
  });
});

describe('execution error messages', () => {
  test('name the template, line, column (bytes before the node, as Go) and node', () => {
    const template = parseGoTemplate('custom', 'line one\nline two\n  {{ .Spec.Foo.Bar }}');
    expect(() => template.execute({ spec: { foo: 'x' } })).toThrow(
      new GoTemplateError(
        `template: custom:3:5: executing "custom" at <.Spec.Foo.Bar>: can't evaluate field Bar in type string`,
      ),
    );
  });

  test('long nodes are cut at 20 characters like Go', () => {
    expect(renderError('{{ fail "a very long message here" }}')).toContain('at <fail "a very long me...>');
  });
});

describe('limits', () => {
  test('maxOutputBytes counts UTF-8 bytes', () => {
    const template = parseGoTemplate('t', '{{ .S }}', { limits: { maxOutputBytes: 3 } });
    expect(template.execute({ S: 'abc' })).toBe('abc');
    expect(() => template.execute({ S: 'éé' })).toThrow('output exceeds the limit of 3 bytes');
  });

  test('maxSteps bounds the work a template does', () => {
    const text = '{{ range 100 }}{{ end }}';
    expect(renderError(text, {}, { limits: { maxSteps: 50 } })).toContain(
      'execution exceeded the limit of 50 steps',
    );
    expect(parseGoTemplate('t', text, { limits: { maxSteps: 500 } }).execute({})).toBe('');
  });

  test('the default step limit stops runaway loops', () => {
    expect(renderError('{{ range 1000000 }}{{ range 1000000 }}{{ end }}{{ end }}')).toContain(
      'exceeded the limit of 1000000 steps',
    );
  });

  test('range over an integer above 1,000,000 is refused', () => {
    expect(renderError('{{ range 1000001 }}{{ end }}')).toContain('exceeds the limit of 1000000 iterations');
  });

  test('template recursion depth is limited to 100', () => {
    expect(renderError('{{ define "r" }}{{ template "r" . }}{{ end }}{{ template "r" . }}')).toContain(
      'exceeded maximum template depth (100)',
    );
  });

  test('functions building large strings respect the output limit', () => {
    expect(renderError('{{ $x := repeat 10000000 "x" }}')).toContain(
      'exceeds the output limit of 1048576 bytes',
    );
  });

  test('cyclic values built with set fail instead of recursing forever', () => {
    expect(renderError('{{ $d := dict }}{{ $_ := set $d "self" $d }}{{ $d }}')).toContain(
      'nested deeper than',
    );
  });

  test('invalid limits are rejected', () => {
    expect(() => parseGoTemplate('t', '', { limits: { maxSteps: 0 } })).toThrow(GoTemplateError);
  });
});

describe('safety', () => {
  test.each([
    ['.constructor', '[{{ .constructor }}]'],
    ['.__proto__', '[{{ .__proto__ }}]'],
    ['inherited .toString', '[{{ .toString }}]'],
    ['index "__proto__"', '[{{ index . "__proto__" }}]'],
    ['index "constructor"', '[{{ index . "constructor" }}]'],
  ])('%s reads as missing', (_name, text) => {
    expect(render(text, { a: 1 })).toBe('[]');
  });

  test('inherited properties are invisible to fields, len and range', () => {
    const data = Object.assign(Object.create({ Inherited: 'x' }) as object, { own: 1 });
    expect(render('[{{ .Inherited }}] {{ len . }} {{ range $k, $v := . }}{{ $k }}{{ end }}', data)).toBe(
      '[] 1 own',
    );
  });

  test('dict and set refuse prototype keys, and nothing reaches Object.prototype', () => {
    expect(renderError('{{ dict "__proto__" (dict "polluted" 1) }}')).toContain(
      'key "__proto__" is not allowed',
    );
    expect(renderError('{{ set (dict) "constructor" 1 }}')).toContain('is not allowed');
    render('{{ $d := dict "a" 1 }}{{ $_ := merge $d (fromJson "{\\"__proto__\\":{\\"polluted\\":1}}") }}');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });
});

describe('compiled templates', () => {
  test('parse once, execute many times with different data', () => {
    const template = parseGoTemplate('t', '{{ range . }}{{ . }},{{ end }}');
    expect(template.name).toBe('t');
    expect(template.execute([1, 2])).toBe('1,2,');
    expect(template.execute(['x'])).toBe('x,');
    expect(template.execute([])).toBe('');
  });

  test('a failed execution does not affect the next one', () => {
    const template = parseGoTemplate('t', '{{ .A.B }}');
    expect(() => template.execute({ A: 'str' })).toThrow(GoTemplateError);
    expect(template.execute({ A: { B: 'ok' } })).toBe('ok');
  });
});

// Istio's conformance custom template (verbatim), rendered against JSON-keyed pod data.
const CONFORMANCE_TEMPLATE = `metadata:
  annotations:
    # Disable the built-in transformations. In the future we may want a template-level API
    prometheus.istio.io/merge-metrics: "false"
    sidecar.istio.io/rewriteAppHTTPProbers: "false"
    foo: bar
spec:
  containers:
  {{- range $index, $container := .Spec.Containers }}
  - name: {{ $container.Name }}
    env:
    - name: SOME_ENV
      value: "true"
    - name: SOME_FILE
      value: /var/lib/data/foo.json
    volumeMounts:
    - mountPath: /var/lib/data/foo.json
      subPath: foo.json
      name: some-injected-file
  {{- end}}
  volumes:
  - name: some-injected-file
    downwardAPI:
      items:
      - path: foo.json
        fieldRef:
          fieldPath: "metadata.annotations['foo']"
`;

describe('real injection templates', () => {
  test('the conformance custom template renders one entry per container', () => {
    const template = parseGoTemplate('custom', CONFORMANCE_TEMPLATE);
    const out = template.execute({
      spec: { containers: [{ name: 'hello', image: 'x' }, { name: 'world' }] },
    });
    expect(out).toBe(`metadata:
  annotations:
    # Disable the built-in transformations. In the future we may want a template-level API
    prometheus.istio.io/merge-metrics: "false"
    sidecar.istio.io/rewriteAppHTTPProbers: "false"
    foo: bar
spec:
  containers:
  - name: hello
    env:
    - name: SOME_ENV
      value: "true"
    - name: SOME_FILE
      value: /var/lib/data/foo.json
    volumeMounts:
    - mountPath: /var/lib/data/foo.json
      subPath: foo.json
      name: some-injected-file
  - name: world
    env:
    - name: SOME_ENV
      value: "true"
    - name: SOME_FILE
      value: /var/lib/data/foo.json
    volumeMounts:
    - mountPath: /var/lib/data/foo.json
      subPath: foo.json
      name: some-injected-file
  volumes:
  - name: some-injected-file
    downwardAPI:
      items:
      - path: foo.json
        fieldRef:
          fieldPath: "metadata.annotations['foo']"
`);
  });

  // In the style of Istio's built-in sidecar template (files/injection-template.yaml).
  const SIDECAR_STYLE_TEMPLATE = `{{- $containers := list }}
{{- range $index, $container := .Spec.Containers }}{{ if not (eq $container.Name "istio-proxy") }}{{ $containers = append $containers $container.Name }}{{ end }}{{- end }}
metadata:
  labels:
    service.istio.io/canonical-name: {{ index .ObjectMeta.Labels \`service.istio.io/canonical-name\` | default (index .ObjectMeta.Labels \`app\`) | default .DeploymentMeta.Name | quote }}
  annotations: {
    {{- if eq (len $containers) 1 }}
    kubectl.kubernetes.io/default-logs-container: "{{ index $containers 0 }}",
    {{- end }}
    sidecar.istio.io/interceptionMode: "{{ annotation .ObjectMeta \`sidecar.istio.io/interceptionMode\` .ProxyConfig.InterceptionMode }}",
  }
spec:
  containers:
  - name: istio-proxy
    image: "{{ .Values.global.hub }}/{{ .Values.global.proxy.image }}:{{ .Values.global.tag }}"
    args:
    - proxy
    - sidecar
    {{- if eq .Values.global.proxy.tracer "zipkin" }}
    - --zipkinAddress
    - {{ printf "%s:%d" .Values.global.tracer.zipkin.host .Values.global.tracer.zipkin.port }}
    {{- end }}
    {{- if .ProxyConfig.Concurrency }}
    - --concurrency
    - "{{ .ProxyConfig.Concurrency.GetValue }}"
    {{- end }}
    env:
    {{- range $key, $value := .ProxyConfig.ProxyMetadata }}
    - name: {{ $key }}
      value: "{{ $value }}"
    {{- end }}
    - name: ISTIO_META_APP_CONTAINERS
      value: "{{ $containers | join "," }}"
    - name: ISTIO_META_PROXY_METADATA
      value: '{{ toJSON .ProxyConfig.ProxyMetadata }}'
    {{- with .ProxyConfig.ProxyStatsMatcher }}
    - name: ISTIO_META_STATS_MATCHER
      value: {{ toJSON . | quote }}
    {{- end }}
    resources:
{{ .Values.global.proxy.resources | toYaml | indent 6 }}
  {{- if .Spec.HostNetwork }}
  hostNetwork: true
  {{- end }}
`;

  // Test doubles with the behaviour of Istio's injector functions of the same names.
  const ISTIO_FUNCS: FuncMap = {
    annotation: (meta, name, fallback) => {
      const annotations = (meta as { annotations?: Record<string, string> } | undefined)?.annotations ?? {};
      return Object.hasOwn(annotations, String(name)) ? annotations[String(name)] : String(fallback ?? '');
    },
    toJSON: (value) => (value === undefined || value === null ? '{}' : JSON.stringify(value)),
    // istiod's toYaml ends its YAML with a newline, which sprig's indent then pads like any other line.
    toYaml: (value) => goYaml(value),
  };

  const values = {
    global: {
      hub: 'docker.io/istio',
      tag: '1.24.0',
      proxy: {
        image: 'proxyv2',
        tracer: 'zipkin',
        resources: { requests: { memory: '128Mi', cpu: '100m' }, limits: { memory: '1Gi', cpu: '2' } },
      },
      tracer: { zipkin: { host: 'zipkin.istio-system', port: 9411 } },
    },
  };

  test('the sidecar-style template with every optional block present', () => {
    const template = parseGoTemplate('sidecar', SIDECAR_STYLE_TEMPLATE, {
      funcNames: Object.keys(ISTIO_FUNCS),
    });
    const out = template.execute(
      {
        objectMeta: {
          name: 'reviews-v1-abc',
          labels: { app: 'reviews' },
          annotations: { 'sidecar.istio.io/interceptionMode': 'TPROXY' },
        },
        spec: { containers: [{ name: 'reviews' }, { name: 'istio-proxy' }] },
        deploymentMeta: { name: 'reviews-v1' },
        proxyConfig: {
          interceptionMode: 'REDIRECT',
          concurrency: 2,
          proxyMetadata: { ISTIO_META_DNS_CAPTURE: 'true', BOOTSTRAP_XDS_AGENT: 'false' },
          proxyStatsMatcher: { inclusionPrefixes: ['cluster.outbound'] },
        },
        values,
      },
      ISTIO_FUNCS,
    );
    expect(out).toBe(`
metadata:
  labels:
    service.istio.io/canonical-name: "reviews"
  annotations: {
    kubectl.kubernetes.io/default-logs-container: "reviews",
    sidecar.istio.io/interceptionMode: "TPROXY",
  }
spec:
  containers:
  - name: istio-proxy
    image: "docker.io/istio/proxyv2:1.24.0"
    args:
    - proxy
    - sidecar
    - --zipkinAddress
    - zipkin.istio-system:9411
    - --concurrency
    - "2"
    env:
    - name: BOOTSTRAP_XDS_AGENT
      value: "false"
    - name: ISTIO_META_DNS_CAPTURE
      value: "true"
    - name: ISTIO_META_APP_CONTAINERS
      value: "reviews"
    - name: ISTIO_META_PROXY_METADATA
      value: '{"ISTIO_META_DNS_CAPTURE":"true","BOOTSTRAP_XDS_AGENT":"false"}'
    - name: ISTIO_META_STATS_MATCHER
      value: "{\\"inclusionPrefixes\\":[\\"cluster.outbound\\"]}"
    resources:
      limits:
        cpu: "2"
        memory: 1Gi
      requests:
        cpu: 100m
        memory: 128Mi
      
`);
  });

  test('the sidecar-style template with optional fields absent takes the other branches', () => {
    const template = parseGoTemplate('sidecar', SIDECAR_STYLE_TEMPLATE, {
      funcNames: Object.keys(ISTIO_FUNCS),
    });
    const out = template.execute(
      {
        objectMeta: { name: 'p', labels: {} },
        spec: { containers: [{ name: 'a' }, { name: 'b' }], hostNetwork: true },
        deploymentMeta: { name: 'web' },
        proxyConfig: { interceptionMode: 'REDIRECT' },
        values: {
          global: { ...values.global, proxy: { ...values.global.proxy, tracer: 'none', resources: {} } },
        },
      },
      ISTIO_FUNCS,
    );
    expect(out).toBe(`
metadata:
  labels:
    service.istio.io/canonical-name: "web"
  annotations: {
    sidecar.istio.io/interceptionMode: "REDIRECT",
  }
spec:
  containers:
  - name: istio-proxy
    image: "docker.io/istio/proxyv2:1.24.0"
    args:
    - proxy
    - sidecar
    env:
    - name: ISTIO_META_APP_CONTAINERS
      value: "a,b"
    - name: ISTIO_META_PROXY_METADATA
      value: '{}'
    resources:
      {}
      
  hostNetwork: true
`);
  });
});
