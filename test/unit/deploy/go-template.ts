/**
 * Just enough of Go's text/template and Helm's functions to render deploy/charts/meshrev without helm:
 * text and `{{- -}}` trimming, comments, field chains on `.`/`$`/`$var`, pipelines, parentheses,
 * `if`/`else if`/`else`, `range` (lists and maps, with variables), `with`, `define` and `include`, and
 * the functions the chart uses. Anything else throws, so a template outside this subset fails the test
 * loudly instead of rendering something wrong.
 */
import { stringify } from 'yaml';

type Arg =
  | { kind: 'field'; base: string; path: string[] }
  | { kind: 'literal'; value: unknown }
  | { kind: 'ident'; name: string }
  | { kind: 'pipe'; pipe: Pipeline };

interface Pipeline {
  declared: string[];
  commands: Arg[][];
}

type TemplateNode =
  | { type: 'text'; text: string }
  | { type: 'action'; pipe: Pipeline }
  | { type: 'if'; branches: Array<{ condition: Pipeline; body: TemplateNode[] }>; otherwise: TemplateNode[] }
  | { type: 'range' | 'with'; pipe: Pipeline; body: TemplateNode[]; otherwise: TemplateNode[] };

type Token =
  { kind: 'word'; text: string } | { kind: 'literal'; value: unknown } | { kind: 'punct'; text: string };

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let index = 0;
  while (index < source.length) {
    const char = source[index]!;
    if (/\s/.test(char)) {
      index += 1;
    } else if (source.startsWith(':=', index)) {
      tokens.push({ kind: 'punct', text: ':=' });
      index += 2;
    } else if ('()|,'.includes(char)) {
      tokens.push({ kind: 'punct', text: char });
      index += 1;
    } else if (char === '"') {
      let end = index + 1;
      while (end < source.length && source[end] !== '"') end += source[end] === '\\' ? 2 : 1;
      tokens.push({ kind: 'literal', value: JSON.parse(source.slice(index, end + 1)) as string });
      index = end + 1;
    } else if (char === '`') {
      const end = source.indexOf('`', index + 1);
      tokens.push({ kind: 'literal', value: source.slice(index + 1, end) });
      index = end + 1;
    } else {
      const match = /^[^\s()|,]+/.exec(source.slice(index));
      const word = match![0];
      if (/^-?\d+(\.\d+)?$/.test(word)) tokens.push({ kind: 'literal', value: Number(word) });
      else if (word === 'true' || word === 'false') tokens.push({ kind: 'literal', value: word === 'true' });
      else if (word === 'nil') tokens.push({ kind: 'literal', value: null });
      else tokens.push({ kind: 'word', text: word });
      index += word.length;
    }
  }
  return tokens;
}

function parseArg(word: string): Arg {
  if (word === '.') return { kind: 'field', base: '.', path: [] };
  if (word.startsWith('.')) return { kind: 'field', base: '.', path: word.slice(1).split('.') };
  if (word.startsWith('$')) {
    const [base = '$', ...path] = word.split('.');
    return { kind: 'field', base, path };
  }
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) return { kind: 'ident', name: word };
  throw new Error(`unsupported template token '${word}'`);
}

function parsePipeline(tokens: Token[]): Pipeline {
  let position = 0;
  const declared: string[] = [];
  const assignment = tokens.findIndex((token) => token.kind === 'punct' && token.text === ':=');
  if (assignment >= 0) {
    for (const token of tokens.slice(0, assignment)) {
      if (token.kind === 'word') declared.push(token.text);
    }
    position = assignment + 1;
  }
  const parseCommands = (): Arg[][] => {
    const commands: Arg[][] = [[]];
    while (position < tokens.length) {
      const token = tokens[position]!;
      position += 1;
      if (token.kind === 'punct' && token.text === ')') break;
      if (token.kind === 'punct' && token.text === '|') commands.push([]);
      else if (token.kind === 'punct' && token.text === '(') {
        commands.at(-1)!.push({ kind: 'pipe', pipe: { declared: [], commands: parseCommands() } });
      } else if (token.kind === 'literal') commands.at(-1)!.push({ kind: 'literal', value: token.value });
      else if (token.kind === 'word') commands.at(-1)!.push(parseArg(token.text));
      else throw new Error(`unexpected '${token.text}' in a pipeline`);
    }
    return commands;
  };
  return { declared, commands: parseCommands() };
}

interface Frame {
  kind: 'root' | 'if' | 'range' | 'with' | 'define';
  node?: TemplateNode;
  name?: string;
  target: TemplateNode[];
}

export interface ParsedTemplate {
  body: TemplateNode[];
  defines: Map<string, TemplateNode[]>;
}

export function parseTemplate(source: string): ParsedTemplate {
  const body: TemplateNode[] = [];
  const defines = new Map<string, TemplateNode[]>();
  const stack: Frame[] = [{ kind: 'root', target: body }];
  const current = (): Frame => stack.at(-1)!;
  let trimNextText = false;
  let cursor = 0;
  const pushText = (text: string) => {
    const trimmed = trimNextText ? text.replace(/^[ \t\r\n]+/, '') : text;
    trimNextText = false;
    if (trimmed !== '') current().target.push({ type: 'text', text: trimmed });
  };
  while (cursor < source.length) {
    const open = source.indexOf('{{', cursor);
    if (open < 0) {
      pushText(source.slice(cursor));
      break;
    }
    let text = source.slice(cursor, open);
    let start = open + 2;
    if (source[start] === '-' && /[ \t\r\n]/.test(source[start + 1] ?? '')) {
      text = text.replace(/[ \t\r\n]+$/, '');
      start += 1;
    }
    pushText(text);
    const close = source.indexOf('}}', start);
    if (close < 0) throw new Error('unclosed action');
    let action = source.slice(start, close);
    cursor = close + 2;
    if (/[ \t\r\n]-$/.test(action)) {
      action = action.slice(0, -1);
      trimNextText = true;
    }
    action = action.trim();
    if (action.startsWith('/*') && action.endsWith('*/')) continue;
    const tokens = tokenize(action);
    const keyword = tokens[0]?.kind === 'word' ? tokens[0].text : '';
    const frame = current();
    if (keyword === 'if') {
      const node: TemplateNode = {
        type: 'if',
        branches: [{ condition: parsePipeline(tokens.slice(1)), body: [] }],
        otherwise: [],
      };
      frame.target.push(node);
      stack.push({ kind: 'if', node, target: node.branches[0]!.body });
    } else if (keyword === 'range' || keyword === 'with') {
      const node: TemplateNode = {
        type: keyword,
        pipe: parsePipeline(tokens.slice(1)),
        body: [],
        otherwise: [],
      };
      frame.target.push(node);
      stack.push({ kind: keyword, node, target: node.body });
    } else if (keyword === 'else') {
      const node = frame.node;
      if (node === undefined) throw new Error('else outside a block');
      const next = tokens[1];
      if (next?.kind === 'word' && next.text === 'if' && node.type === 'if') {
        const branch = { condition: parsePipeline(tokens.slice(2)), body: [] };
        node.branches.push(branch);
        frame.target = branch.body;
      } else if (node.type === 'if' || node.type === 'range' || node.type === 'with') {
        frame.target = node.otherwise;
      }
    } else if (keyword === 'end') {
      const done = stack.pop();
      if (done?.kind === 'define') defines.set(done.name!, done.target);
      if (stack.length === 0) throw new Error('unbalanced end');
    } else if (keyword === 'define') {
      const name = tokens[1];
      if (name?.kind !== 'literal' || typeof name.value !== 'string') throw new Error('define needs a name');
      stack.push({ kind: 'define', name: name.value, target: [] });
    } else if (['template', 'block', 'break', 'continue'].includes(keyword)) {
      throw new Error(`'${keyword}' is outside the supported subset`);
    } else {
      frame.target.push({ type: 'action', pipe: parsePipeline(tokens) });
    }
  }
  if (stack.length !== 1) throw new Error('missing end');
  return { body, defines };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Go's notion of an empty value, used by `if`, `with`, `range`, `default` and `not`. */
export function isTruthy(value: unknown): boolean {
  if (value === undefined || value === null || value === false || value === 0 || value === '') return false;
  if (Array.isArray(value)) return value.length > 0;
  if (isRecord(value)) return Object.keys(value).length > 0;
  return true;
}

function printValue(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw new Error(`cannot print ${JSON.stringify(value)} in a template`);
}

function indentLines(spaces: number, text: string): string {
  const pad = ' '.repeat(spaces);
  return text
    .split('\n')
    .map((line) => pad + line)
    .join('\n');
}

type TemplateFunction = (...args: unknown[]) => unknown;

interface Scope {
  dot: unknown;
  variables: Map<string, unknown>;
}

export class ChartRenderer {
  private readonly defines = new Map<string, TemplateNode[]>();
  private readonly functions: Record<string, TemplateFunction>;

  constructor(helpers: string[]) {
    for (const helper of helpers) {
      for (const [name, body] of parseTemplate(helper).defines) this.defines.set(name, body);
    }
    this.functions = {
      include: (name, context) => this.renderNodes(this.define(name), { dot: context, variables: new Map() }),
      default: (fallback, value) => (isTruthy(value) ? value : fallback),
      toYaml: (value) => stringify(value).replace(/\n$/, ''),
      nindent: (spaces, text) => '\n' + indentLines(Number(spaces), printValue(text)),
      indent: (spaces, text) => indentLines(Number(spaces), printValue(text)),
      quote: (value) => JSON.stringify(printValue(value)),
      hasPrefix: (prefix, text) => typeof text === 'string' && text.startsWith(String(prefix)),
      eq: (left, right) => left === right,
      ne: (left, right) => left !== right,
      not: (value) => !isTruthy(value),
      and: (...values) => values.find((value) => !isTruthy(value)) ?? values.at(-1),
      or: (...values) => values.find((value) => isTruthy(value)) ?? values.at(-1),
    };
  }

  private define(name: unknown): TemplateNode[] {
    const body = typeof name === 'string' ? this.defines.get(name) : undefined;
    if (body === undefined) throw new Error(`no template named ${String(name)}`);
    return body;
  }

  render(source: string, context: unknown): string {
    const parsed = parseTemplate(source);
    for (const [name, body] of parsed.defines) this.defines.set(name, body);
    return this.renderNodes(parsed.body, { dot: context, variables: new Map([['$', context]]) });
  }

  private renderNodes(nodes: TemplateNode[], scope: Scope): string {
    let output = '';
    const variables = new Map(scope.variables);
    if (!variables.has('$')) variables.set('$', scope.dot);
    const local: Scope = { dot: scope.dot, variables };
    for (const node of nodes) {
      if (node.type === 'text') output += node.text;
      else if (node.type === 'action') {
        const value = this.evaluate(node.pipe, local);
        if (node.pipe.declared.length === 0) output += printValue(value);
      } else if (node.type === 'if') {
        const branch = node.branches.find((candidate) => isTruthy(this.evaluate(candidate.condition, local)));
        output += this.renderNodes(branch === undefined ? node.otherwise : branch.body, local);
      } else if (node.type === 'with') {
        const value = this.evaluate({ declared: [], commands: node.pipe.commands }, local);
        output += isTruthy(value)
          ? this.renderNodes(node.body, { dot: value, variables })
          : this.renderNodes(node.otherwise, local);
      } else {
        output += this.renderRange(node.pipe, node.body, node.otherwise, local);
      }
    }
    return output;
  }

  private renderRange(pipe: Pipeline, body: TemplateNode[], otherwise: TemplateNode[], scope: Scope): string {
    const collection = this.evaluate({ declared: [], commands: pipe.commands }, scope);
    const entries: Array<[unknown, unknown]> = Array.isArray(collection)
      ? collection.map((value, index) => [index, value])
      : isRecord(collection)
        ? Object.keys(collection)
            .sort()
            .map((key) => [key, collection[key]])
        : [];
    if (entries.length === 0) return this.renderNodes(otherwise, scope);
    return entries
      .map(([key, value]) => {
        const variables = new Map(scope.variables);
        const [first, second] = pipe.declared;
        if (second !== undefined) {
          variables.set(first!, key);
          variables.set(second, value);
        } else if (first !== undefined) variables.set(first, value);
        return this.renderNodes(body, { dot: value, variables });
      })
      .join('');
  }

  private evaluate(pipe: Pipeline, scope: Scope): unknown {
    let piped: unknown;
    pipe.commands.forEach((command, index) => {
      piped = this.evaluateCommand(command, scope, index === 0 ? [] : [piped]);
    });
    for (const name of pipe.declared) scope.variables.set(name, piped);
    return piped;
  }

  private evaluateCommand(command: Arg[], scope: Scope, piped: unknown[]): unknown {
    const [head, ...rest] = command;
    if (head === undefined) throw new Error('empty command');
    const args = () => [...rest.map((arg) => this.evaluateArg(arg, scope)), ...piped];
    if (head.kind === 'ident') {
      const fn = this.functions[head.name];
      if (fn === undefined) throw new Error(`function '${head.name}' is outside the supported subset`);
      return fn(...args());
    }
    const value = this.evaluateArg(head, scope);
    if (typeof value === 'function') return (value as TemplateFunction)(...args());
    if (rest.length > 0 || piped.length > 0)
      throw new Error('arguments given to a value that is not a function');
    return value;
  }

  private evaluateArg(arg: Arg, scope: Scope): unknown {
    if (arg.kind === 'literal') return arg.value;
    if (arg.kind === 'pipe') return this.evaluate(arg.pipe, scope);
    if (arg.kind === 'ident') {
      const fn = this.functions[arg.name];
      if (fn === undefined) throw new Error(`function '${arg.name}' is outside the supported subset`);
      return fn();
    }
    let value: unknown = arg.base === '.' ? scope.dot : scope.variables.get(arg.base);
    if (arg.base !== '.' && !scope.variables.has(arg.base)) throw new Error(`undefined variable ${arg.base}`);
    for (const key of arg.path) value = isRecord(value) ? value[key] : undefined;
    return value;
  }
}
