// Walks a parsed template set with Go's text/template execution rules: variable scoping, pipelines passing
// the previous result as the last argument, lazy and/or, range/with/else, nested templates, break and
// continue. Every node, command and range iteration costs a step, so user templates stay bounded.
import { activeLimits, formatValue, getOwn, goTypeName, isMap, isTrue, sortedKeys } from './fmt.js';
import { ArityError, BUILTIN_FUNCS, SPRIG_FUNCS, type FuncMap, type TemplateFunction } from './funcs.js';
import {
  GoTemplateError,
  location,
  type ArgNode,
  type CommandNode,
  type ControlNode,
  type FieldRef,
  type Node,
  type PipeNode,
  type TemplateCallNode,
  type TemplateSet,
} from './parse.js';

export interface ExecLimits {
  readonly maxOutputBytes: number;
  readonly maxSteps: number;
}

/** How deep {{template}} calls may nest (Go allows 100000; user templates get far less). */
export const MAX_TEMPLATE_DEPTH = 100;
/** The largest integer `range` accepts. */
export const MAX_RANGE_INTEGER = 1_000_000;

// What a walk tells its caller: carry on, or unwind to the enclosing range.
const NORMAL = 0;
const BREAK = 1;
const CONTINUE = 2;
type Flow = typeof NORMAL | typeof BREAK | typeof CONTINUE;

/** Marks "no value from a previous pipeline stage" (distinct from undefined, which is a value). */
const NO_FINAL: unique symbol = Symbol('no final argument');

interface Located {
  readonly pos: number;
  readonly src: string;
}

class Execution {
  private out = '';
  private outBytes = 0;
  private steps = 0;
  // The variable stack, as parallel arrays: `$` at the bottom, innermost declaration on top.
  private names: string[];
  private values: unknown[];
  private depth = 0;
  private treeName: string;
  private at: Located | undefined;

  constructor(
    private readonly set: TemplateSet,
    data: unknown,
    private readonly funcs: FuncMap | undefined,
    private readonly limits: ExecLimits,
  ) {
    this.names = ['$'];
    this.values = [data];
    this.treeName = set.name;
  }

  run(): string {
    const root = this.set.trees.get(this.set.name);
    if (!root) throw new GoTemplateError(`template: ${this.set.name}: no template to execute`);
    this.walkList(this.values[0], root);
    return this.out;
  }

  // --- errors and limits ---------------------------------------------------------------------------------

  private error(message: string): GoTemplateError {
    if (!this.at) return new GoTemplateError(`template: ${this.set.name}: ${message}`);
    const where = location(this.set.name, this.set.text, this.at.pos);
    const chars = [...this.at.src];
    const context = chars.length > 20 ? `${chars.slice(0, 20).join('')}...` : this.at.src;
    return new GoTemplateError(
      `template: ${where}: executing "${this.treeName}" at <${context}>: ${message}`,
    );
  }

  private step(): void {
    this.charge(1);
  }

  /** Counts work against the step limit: one step per node evaluated, and a function's own (regex searches). */
  charge(steps: number): void {
    this.steps += steps;
    if (this.steps > this.limits.maxSteps) {
      throw this.error(`execution exceeded the limit of ${this.limits.maxSteps} steps`);
    }
  }

  private write(text: string): void {
    if (text === '') return;
    this.outBytes += Buffer.byteLength(text, 'utf8');
    if (this.outBytes > this.limits.maxOutputBytes) {
      throw this.error(`output exceeds the limit of ${this.limits.maxOutputBytes} bytes`);
    }
    this.out += text;
  }

  // --- statements ----------------------------------------------------------------------------------------

  private walkList(dot: unknown, list: readonly Node[]): Flow {
    for (const node of list) {
      const flow = this.walk(dot, node);
      if (flow !== NORMAL) return flow;
    }
    return NORMAL;
  }

  private walk(dot: unknown, node: Node): Flow {
    this.step();
    switch (node.kind) {
      case 'text':
        this.write(node.text);
        return NORMAL;
      case 'action': {
        this.at = node;
        const value = this.evalPipeline(dot, node.pipe);
        if (node.pipe.decl.length === 0) this.printValue(node, value);
        return NORMAL;
      }
      case 'if':
      case 'with':
        return this.walkIfOrWith(dot, node);
      case 'range':
        return this.walkRange(dot, node);
      case 'template':
        this.walkTemplate(dot, node);
        return NORMAL;
      case 'break':
        return BREAK;
      case 'continue':
        return CONTINUE;
    }
  }

  /** Prints an action's value. Missing values (undefined, null) print nothing: see index.ts. */
  private printValue(node: Located, value: unknown): void {
    if (value === undefined || value === null) return;
    if (typeof value === 'function') {
      this.at = node;
      throw this.error(`can't print ${node.src} of type ${goTypeName(value)}`);
    }
    let text: string;
    try {
      text = formatValue(value);
    } catch (error) {
      this.at = node;
      throw this.error(error instanceof Error ? error.message : String(error));
    }
    this.write(text);
  }

  private popTo(mark: number): void {
    if (this.names.length === mark) return;
    this.names.length = mark;
    this.values.length = mark;
  }

  private walkIfOrWith(dot: unknown, node: ControlNode): Flow {
    const mark = this.names.length;
    this.at = node;
    const value = this.evalPipeline(dot, node.pipe);
    let flow: Flow = NORMAL;
    if (isTrue(value)) flow = this.walkList(node.kind === 'with' ? value : dot, node.list);
    else if (node.elseList) flow = this.walkList(dot, node.elseList);
    this.popTo(mark);
    return flow;
  }

  private walkRange(dot: unknown, node: ControlNode): Flow {
    const mark = this.names.length;
    this.at = node;
    const value = this.evalPipeline(dot, node.pipe);
    // The declared variables sit on top of the stack; each iteration overwrites them in place.
    const inner = this.names.length;
    let iterations = 0;
    if (Array.isArray(value)) {
      const length = value.length;
      for (let i = 0; i < length; i++) {
        iterations++;
        if (this.rangeIteration(node, inner, i, value[i]) === BREAK) break;
      }
    } else if (isMap(value)) {
      const keys = sortedKeys(value);
      const elements = keys.map((key) => value[key]);
      for (let i = 0; i < keys.length; i++) {
        iterations++;
        if (this.rangeIteration(node, inner, keys[i], elements[i]) === BREAK) break;
      }
    } else if (typeof value === 'number' && Number.isInteger(value)) {
      this.at = node;
      if (node.pipe.decl.length > 1)
        throw this.error(`can't use ${value} to iterate over more than one variable`);
      if (value > MAX_RANGE_INTEGER) {
        throw this.error(`range over ${value} exceeds the limit of ${MAX_RANGE_INTEGER} iterations`);
      }
      for (let i = 0; i < value; i++) {
        iterations++;
        if (this.rangeIteration(node, inner, i, i) === BREAK) break;
      }
    } else if (value !== undefined && value !== null) {
      this.at = node;
      throw this.error(`range can't iterate over ${formatValue(value)}`);
    }
    let flow: Flow = NORMAL;
    if (iterations === 0 && node.elseList) flow = this.walkList(dot, node.elseList);
    this.popTo(mark);
    return flow;
  }

  private rangeIteration(node: ControlNode, inner: number, index: unknown, element: unknown): Flow {
    this.step();
    const { decl, isAssign } = node.pipe;
    if (decl.length > 0) {
      if (isAssign) this.setVar(decl[0] ?? '', decl.length > 1 ? index : element);
      else this.values[inner - 1] = element;
    }
    if (decl.length > 1) {
      if (isAssign) this.setVar(decl[1] ?? '', element);
      else this.values[inner - 2] = index;
    }
    const flow = this.walkList(element, node.list);
    this.popTo(inner);
    return flow === BREAK ? BREAK : NORMAL;
  }

  private walkTemplate(dot: unknown, node: TemplateCallNode): void {
    this.at = node;
    const tree = this.set.trees.get(node.name);
    if (!tree) throw this.error(`template ${JSON.stringify(node.name)} not defined`);
    if (this.depth >= MAX_TEMPLATE_DEPTH)
      throw this.error(`exceeded maximum template depth (${MAX_TEMPLATE_DEPTH})`);
    const newDot = node.pipe ? this.evalPipeline(dot, node.pipe) : undefined;
    const saved = { names: this.names, values: this.values, treeName: this.treeName };
    this.names = ['$'];
    this.values = [newDot];
    this.treeName = node.name;
    this.depth++;
    this.walkList(newDot, tree);
    this.depth--;
    ({ names: this.names, values: this.values, treeName: this.treeName } = saved);
  }

  // --- variables -----------------------------------------------------------------------------------------

  private varValue(name: string): unknown {
    for (let i = this.names.length - 1; i >= 0; i--) if (this.names[i] === name) return this.values[i];
    throw this.error(`undefined variable: ${name}`);
  }

  private setVar(name: string, value: unknown): void {
    for (let i = this.names.length - 1; i >= 0; i--) {
      if (this.names[i] === name) {
        this.values[i] = value;
        return;
      }
    }
    throw this.error(`undefined variable: ${name}`);
  }

  // --- expressions ---------------------------------------------------------------------------------------

  private evalPipeline(dot: unknown, pipe: PipeNode): unknown {
    let value: unknown = NO_FINAL;
    for (const cmd of pipe.cmds) value = this.evalCommand(dot, cmd, value);
    for (const name of pipe.decl) {
      if (pipe.isAssign) {
        this.setVar(name, value);
      } else {
        this.names.push(name);
        this.values.push(value);
      }
    }
    return value;
  }

  private evalCommand(dot: unknown, cmd: CommandNode, final: unknown): unknown {
    this.step();
    const first = cmd.args[0];
    if (!first) throw this.error('empty command');
    switch (first.kind) {
      case 'field':
        this.at = first;
        return this.evalFieldChain(dot, first, first.fields, cmd.args, final);
      case 'chain':
        return this.evalFieldChain(this.chainReceiver(dot, first), first, first.fields, cmd.args, final);
      case 'identifier':
        return this.evalFunction(dot, first, cmd, cmd.args, final);
      case 'pipe':
        this.notAFunction(cmd.args, final);
        return this.evalPipeline(dot, first.pipe);
      case 'variable':
        return this.evalVariable(first, cmd.args, final);
    }
    this.at = first;
    this.notAFunction(cmd.args, final);
    switch (first.kind) {
      case 'dot':
        return dot;
      case 'nil':
        throw this.error('nil is not a command');
      case 'literal':
        return first.value;
    }
  }

  private notAFunction(args: readonly ArgNode[], final: unknown): void {
    if (args.length > 1 || final !== NO_FINAL) {
      throw this.error(`can't give argument to non-function ${args[0]?.src ?? ''}`);
    }
  }

  private evalArg(dot: unknown, node: ArgNode): unknown {
    this.at = node;
    switch (node.kind) {
      case 'dot':
        return dot;
      case 'nil':
        return null;
      case 'literal':
        return node.value;
      case 'field':
        return this.evalFieldChain(dot, node, node.fields, [node], NO_FINAL);
      case 'variable':
        return this.evalVariable(node, [node], NO_FINAL);
      case 'chain':
        return this.evalFieldChain(this.chainReceiver(dot, node), node, node.fields, [node], NO_FINAL);
      case 'pipe':
        return this.evalPipeline(dot, node.pipe);
      case 'identifier':
        return this.evalFunction(dot, node, node, [node], NO_FINAL);
    }
  }

  private chainReceiver(dot: unknown, chain: Extract<ArgNode, { kind: 'chain' }>): unknown {
    this.at = chain;
    if (chain.node.kind === 'nil') throw this.error(`indirection through explicit nil in ${chain.src}`);
    const receiver = this.evalArg(dot, chain.node);
    this.at = chain;
    return receiver;
  }

  private evalVariable(
    node: Extract<ArgNode, { kind: 'variable' }>,
    args: readonly ArgNode[],
    final: unknown,
  ): unknown {
    this.at = node;
    const value = this.varValue(node.name);
    if (node.fields.length === 0) {
      this.notAFunction(args, final);
      return value;
    }
    return this.evalFieldChain(value, node, node.fields, args, final);
  }

  private evalFieldChain(
    receiver: unknown,
    node: Located,
    fields: readonly FieldRef[],
    args: readonly ArgNode[],
    final: unknown,
  ): unknown {
    const last = fields.length - 1;
    let value = receiver;
    for (let i = 0; i < last; i++)
      value = this.evalField(fields[i] as FieldRef, node, value, undefined, NO_FINAL);
    return this.evalField(fields[last] as FieldRef, node, value, args, final);
  }

  /**
   * One field step. Missing values yield missing values (typed zero structs in Go); maps resolve the field
   * through its candidate keys; scalars answer only the protobuf wrapper getters GetValue/Value, and strings
   * String too (a protobuf enum's, which gives its name).
   */
  private evalField(
    field: FieldRef,
    node: Located,
    receiver: unknown,
    args: readonly ArgNode[] | undefined,
    final: unknown,
  ): unknown {
    const hasArgs = (args !== undefined && args.length > 1) || final !== NO_FINAL;
    if (receiver === undefined || receiver === null) return undefined;
    if (isMap(receiver)) {
      let value: unknown;
      for (const key of field.keys) {
        value = getOwn(receiver, key);
        if (value !== undefined) break;
      }
      // As in Go, a function stored in a map is a value (use `call`), not a method.
      if (hasArgs) {
        this.at = node;
        throw this.error(`${field.name} is not a method but has arguments`);
      }
      return value;
    }
    const wrapperGetter = field.name === 'GetValue' || field.name === 'Value';
    const scalar =
      typeof receiver === 'string' || typeof receiver === 'number' || typeof receiver === 'boolean';
    // A protobuf enum is its name in JSON, and its String method gives that name.
    const enumName = field.name === 'String' && typeof receiver === 'string';
    if ((wrapperGetter && scalar) || enumName) {
      if (hasArgs) throw this.error(`${field.name} has arguments but cannot be invoked as function`);
      return receiver;
    }
    this.at = node;
    throw this.error(`can't evaluate field ${field.name} in type ${goTypeName(receiver)}`);
  }

  private lookupFunction(name: string): { fn: TemplateFunction; builtin: boolean } | undefined {
    const custom = this.funcs && Object.hasOwn(this.funcs, name) ? this.funcs[name] : undefined;
    if (typeof custom === 'function') return { fn: custom, builtin: false };
    if (Object.hasOwn(SPRIG_FUNCS, name))
      return { fn: SPRIG_FUNCS[name] as TemplateFunction, builtin: false };
    if (Object.hasOwn(BUILTIN_FUNCS, name))
      return { fn: BUILTIN_FUNCS[name] as TemplateFunction, builtin: true };
    return undefined;
  }

  private evalFunction(
    dot: unknown,
    ident: Extract<ArgNode, { kind: 'identifier' }>,
    cmd: Located,
    args: readonly ArgNode[],
    final: unknown,
  ): unknown {
    this.at = ident;
    const found = this.lookupFunction(ident.name);
    if (!found) throw this.error(`${JSON.stringify(ident.name)} is not a defined function`);
    if (found.builtin && (ident.name === 'and' || ident.name === 'or')) {
      return this.evalAndOr(ident.name === 'or', dot, cmd, args, final);
    }
    const argv: unknown[] = [];
    for (let i = 1; i < args.length; i++) argv.push(this.evalArg(dot, args[i] as ArgNode));
    if (final !== NO_FINAL) argv.push(final);
    this.at = cmd;
    return this.invoke(ident.name, found.fn, argv);
  }

  /** and/or evaluate their operands left to right and stop at the first one that decides the result. */
  private evalAndOr(
    isOr: boolean,
    dot: unknown,
    cmd: Located,
    args: readonly ArgNode[],
    final: unknown,
  ): unknown {
    const count = args.length - 1 + (final === NO_FINAL ? 0 : 1);
    if (count < 1) {
      this.at = cmd;
      throw this.error(`wrong number of args for ${isOr ? 'or' : 'and'}: want at least 1 got 0`);
    }
    let value: unknown;
    for (let i = 1; i < args.length; i++) {
      value = this.evalArg(dot, args[i] as ArgNode);
      if (isTrue(value) === isOr) return value;
    }
    return final === NO_FINAL ? value : final;
  }

  private invoke(name: string, fn: TemplateFunction, argv: unknown[]): unknown {
    try {
      return fn(...argv);
    } catch (error) {
      if (error instanceof GoTemplateError) throw error;
      if (error instanceof ArityError) throw this.error(error.message);
      throw this.error(`error calling ${name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}

/** Executes the set's main template with `data` as dot and `$`. */
export function executeTemplateSet(
  set: TemplateSet,
  data: unknown,
  funcs: FuncMap | undefined,
  limits: ExecLimits,
): string {
  const previous = { ...activeLimits };
  const execution = new Execution(set, data, funcs, limits);
  activeLimits.maxOutputBytes = limits.maxOutputBytes;
  activeLimits.meter = execution;
  try {
    return execution.run();
  } catch (error) {
    // Deeply nested templates or data can exhaust the JS stack before a limit trips; report it as ours.
    if (error instanceof RangeError && /call stack/i.test(error.message)) {
      throw new GoTemplateError(`template: ${set.name}: execution nested too deeply`);
    }
    if (error instanceof GoTemplateError) throw error;
    throw new GoTemplateError(
      `template: ${set.name}: ${error instanceof Error ? error.message : String(error)}`,
    );
  } finally {
    Object.assign(activeLimits, previous);
  }
}
