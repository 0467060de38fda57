// Rendering of command results: aligned columns for people, JSON or YAML for scripts.
import { stringify } from 'yaml';

import type { OutputFormat } from './args.js';

const COLUMN_GAP = '   ';

/** kubectl-style columns: each as wide as its widest cell, separated by three spaces, no trailing blanks. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]) =>
    headers
      .map((_, column) => (cells[column] ?? '').padEnd(widths[column] ?? 0))
      .join(COLUMN_GAP)
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function renderStructured(value: unknown, format: Exclude<OutputFormat, 'table'>): string {
  return format === 'json' ? JSON.stringify(value, null, 2) : stringify(value).trimEnd();
}

/** `a=3, b=2`, or `-` for nothing. */
export function formatCounts(counts: Readonly<Record<string, number>>): string {
  const entries = Object.entries(counts);
  return entries.length === 0 ? '-' : entries.map(([key, count]) => `${key}=${count}`).join(', ');
}

export function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

export function orDash(value: string | undefined): string {
  return value === undefined || value === '' ? '-' : value;
}
