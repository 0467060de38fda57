/**
 * The argument parser every command shares: kubectl's connection flags, `-o table|json|yaml` and
 * `-h/--help`, plus whatever options the command declares. Parsing is pure; usage errors come back as
 * values so the command decides how to print them (exit code 2).
 */
import { parseArgs, type ParseArgsOptionDescriptor } from 'node:util';

import type { KubeConnection } from './io.js';

export const OUTPUT_FORMATS = ['table', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export type OptionSpec = Record<string, ParseArgsOptionDescriptor>;

export interface CommonOptions {
  connection: KubeConnection;
  output: OutputFormat;
  help: boolean;
}

export type OptionValues = Record<string, string | boolean | undefined>;

export type ParsedArgs =
  | { ok: true; common: CommonOptions; values: OptionValues; positionals: string[] }
  | { ok: false; error: string };

const commonOptions: OptionSpec = {
  kubeconfig: { type: 'string' },
  context: { type: 'string' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
};

/** Help text for the shared flags, appended to every command's help. */
export const COMMON_FLAGS_HELP = [
  'Global flags:',
  '  --kubeconfig <path>   kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)',
  '  --context <name>      kubeconfig context to use',
  '  -h, --help            show this help',
].join('\n');

function isOutputFormat(value: string): value is OutputFormat {
  return (OUTPUT_FORMATS as readonly string[]).includes(value);
}

export function parseCommandArgs(args: readonly string[], options: OptionSpec = {}): ParsedArgs {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...commonOptions, ...options },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
  const values: OptionValues = {};
  for (const [key, value] of Object.entries(parsed.values)) {
    // Repeated string options come back as arrays only when declared `multiple`; none of ours are.
    if (typeof value === 'string' || typeof value === 'boolean') values[key] = value;
  }
  const output = typeof values.output === 'string' ? values.output : 'table';
  if (!isOutputFormat(output)) {
    return {
      ok: false,
      error: `unknown output format "${output}" (use one of: ${OUTPUT_FORMATS.join(', ')})`,
    };
  }
  const connection: KubeConnection = {};
  if (typeof values.kubeconfig === 'string') connection.kubeconfig = values.kubeconfig;
  if (typeof values.context === 'string') connection.context = values.context;
  return {
    ok: true,
    common: { connection, output, help: values.help === true },
    values,
    positionals: parsed.positionals,
  };
}

export function stringOption(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

export function flag(values: OptionValues, name: string): boolean {
  return values[name] === true;
}

const durationUnits: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/**
 * Go-style durations as kubectl accepts them (`90s`, `5m`, `1h30m`, `250ms`); a bare number is seconds.
 * Returns milliseconds, or undefined when the text is not a duration.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1_000);
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(trimmed)) return undefined;
  let total = 0;
  for (const match of trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    const [, amount, unit] = match;
    total += Number(amount) * (durationUnits[unit ?? ''] ?? 0);
  }
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
