// Go text/template for custom injection templates (IstioOperator values.sidecarInjectorWebhook.templates,
// selected per pod by inject.istio.io/templates). Written from the documented semantics of Go's
// text/template (https://pkg.go.dev/text/template) and of sprig; no Go, Istio or sprig code is reused.
//
// Implemented: text and actions with trim markers and comments; dot, field chains, `$`, variables
// (`:=` declares until the enclosing {{end}}, `=` assigns), fields on parenthesised pipelines; if / else if /
// else, with / else with, range over slices, maps (sorted keys), integers (Go 1.22), with else, break and
// continue; define / template / block; pipelines passing the previous value as the last argument; string,
// raw string, rune, integer (0x, 0o, 0b, legacy octal, underscores), float, bool and nil literals; the
// builtins (and/or short-circuit, not, len, index, print, printf, println, html, js, urlquery, eq, ne, lt, le,
// gt, ge, call) and the sprig subset in funcs.ts, whose slice replaces the builtin as it does in istiod's
// function map. Strings are measured and cut as Go's are, in UTF-8 bytes (len, index, substr, trunc); a cut
// inside a character gives U+FFFD where Go keeps the partial bytes. Unknown functions and undefined variables are
// parse errors, as in Go. Messages follow Go's `template: NAME:LINE:COL: executing "T" at <node>: ...`
// (COL counts bytes before the node on its line, as Go does); parse errors give the line only, as Go's do.
//
// Deliberate differences, because the data is JSON-shaped rather than Go structs:
// - A field resolves on an object through its exact key, then its JSON spelling (ServiceAccountName ->
//   serviceAccountName, DNSPolicy -> dnsPolicy), then as a protobuf getter (GetFoo -> Foo); `.GetValue` and
//   `.Value` on a number, string or bool return it (protobuf wrapper types serialise as bare values).
// - A missing field is undefined and stands for Go's typed zero value: field access on it yields undefined
//   (no nil-pointer error), it prints as the empty string (Go prints `<no value>` for a missing map key),
//   it compares equal to "", 0 and false in eq/ne/lt..., and formats as "" under %v and %s. An explicit
//   JSON null prints as "" at the top level and as <nil> inside printed collections and under print/printf.
//   null is also Go's untyped nil where sprig's functions give it (first of an empty list, coalesce of nothing),
//   so it prints as "" where Go prints <no value>, and a function refusing nil in Go takes it here as a typed
//   zero. `make differential` compares this package with Go's text/template and sprig on random templates,
//   and goYaml (istiod's toYaml) with sigs.k8s.io/yaml.
// - Numbers are JS numbers: integral values print as integers; others as Go prints a float64 (%v is
//   shortest %g: 1.5, 1.2345675e+06). Complex literals are not supported.
// - sprig's regex functions run on re2.ts, a Go regexp (RE2 syntax) engine that is linear in its input, not on
//   JavaScript's backtracking RegExp, under which a pattern such as a*a*a*b could stall the webhook for hours.
// Safety: output size, evaluation steps (regex searches included), {{template}} depth and `range N` are
// bounded; data objects are only read through own properties, and __proto__/constructor/prototype are treated
// as absent.
import { executeTemplateSet, type ExecLimits } from './exec.js';
import { BUILTIN_FUNCS, SPRIG_FUNCS, type FuncMap } from './funcs.js';
import { GoTemplateError, parseTemplateSet } from './parse.js';

export { GoTemplateError } from './parse.js';
export { SPRIG_FUNCS, goYaml, toGoJson } from './funcs.js';
export { goTypeName, sprint } from './fmt.js';
export type { FuncMap, TemplateFunction } from './funcs.js';

export interface CompiledTemplate {
  readonly name: string;
  /** Renders with `data` as dot. Throws GoTemplateError. `funcs` here may be call-specific implementations of names declared at parse time. */
  execute(data: unknown, funcs?: FuncMap): string;
}

export interface GoTemplateOptions {
  /** Names of functions the caller supplies at execute time (in addition to the builtins and sprig). */
  readonly funcNames?: readonly string[];
  readonly limits?: { readonly maxOutputBytes?: number; readonly maxSteps?: number };
}

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
export const DEFAULT_MAX_STEPS = 1_000_000;

function limit(value: number | undefined, fallback: number, what: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value <= 0)
    throw new GoTemplateError(`template: ${what} must be a positive integer`);
  return value;
}

/** Parses `text` (throws GoTemplateError on a syntax error or a call to a function name not in `funcNames` ∪ builtins ∪ sprig). */
export function parseGoTemplate(name: string, text: string, options?: GoTemplateOptions): CompiledTemplate {
  const declared = new Set(options?.funcNames ?? []);
  const set = parseTemplateSet(
    name,
    text,
    (fn) => declared.has(fn) || Object.hasOwn(SPRIG_FUNCS, fn) || Object.hasOwn(BUILTIN_FUNCS, fn),
  );
  const limits: ExecLimits = {
    maxOutputBytes: limit(options?.limits?.maxOutputBytes, DEFAULT_MAX_OUTPUT_BYTES, 'maxOutputBytes'),
    maxSteps: limit(options?.limits?.maxSteps, DEFAULT_MAX_STEPS, 'maxSteps'),
  };
  return Object.freeze({
    name,
    execute: (data: unknown, funcs?: FuncMap): string => executeTemplateSet(set, data, funcs, limits),
  });
}
