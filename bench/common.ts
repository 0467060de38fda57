// Shared pieces of the benchmark suite: percentiles, the machine description, the result model (every
// figure beside its baseline from the same run, every target with its verdict) and the result files.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';

import { repoPath } from '../hack/cluster/local-cluster.js';

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const values = Array.from(sorted);
  const sum = values.reduce((a, b) => a + b, 0);
  return {
    count: values.length,
    p50: percentile(values, 50),
    p90: percentile(values, 90),
    p99: percentile(values, 99),
    max: values.at(-1) ?? Number.NaN,
    mean: values.length === 0 ? Number.NaN : sum / values.length,
  };
}

/** One measured figure and, where the suite has one, the baseline measured in the same run. */
export interface Row {
  metric: string;
  value: string;
  baseline?: string;
  /** value ÷ baseline (or the reverse, as named in `metric`), already formatted. */
  ratio?: string;
}

export interface Target {
  name: string;
  threshold: string;
  measured: string;
  met: boolean;
}

export interface SectionResult {
  name: string;
  /** What the baseline is, in one sentence. */
  baseline: string;
  rows: Row[];
  targets: Target[];
  notes: string[];
  /** Raw numbers for the JSON file. */
  data: Record<string, unknown>;
}

export interface MachineInfo {
  date: string;
  commit: string;
  dirty: boolean;
  nproc: number;
  memoryGiB: number;
  cpuModel: string;
  node: string;
  platform: string;
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, {
      cwd: repoPath(),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return '';
  }
}

/** The 1/5/15-minute load averages: other work on the machine shows here and skews every figure. */
export function loadText(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
}

export function machineInfo(): MachineInfo {
  return {
    date: new Date().toISOString(),
    commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown',
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    nproc: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${process.platform}/${process.arch}`,
  };
}

/** The machine-wide CPU tick counters (first line of /proc/stat); undefined where there is none. */
export interface CpuTicks {
  total: number;
  steal: number;
}

export function cpuTicks(): CpuTicks | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8')
      .split('\n', 1)[0]!
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number);
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already inside user/nice.
    const counted = fields.slice(0, 8);
    return { total: counted.reduce((a, b) => a + b, 0), steal: counted[7] ?? 0 };
  } catch {
    return undefined;
  }
}

/**
 * Share of the machine's CPU time the hypervisor gave to someone else between two samples. On a shared VM this is
 * the noise a latency tail cannot be separated from, so the benchmark records it beside every latency round.
 */
export function stealPercent(before: CpuTicks | undefined, after: CpuTicks | undefined): number | undefined {
  if (before === undefined || after === undefined || after.total <= before.total) return undefined;
  return ((after.steal - before.steal) / (after.total - before.total)) * 100;
}

export interface StallProbe {
  ms: number;
  /** Gaps between consecutive clock reads of a spinning thread longer than 1 ms and 5 ms, and the longest. */
  over1ms: number;
  over5ms: number;
  maxMs: number;
}

/**
 * Spins on this thread for `durationMs` and counts the gaps between consecutive clock reads: time the thread wanted
 * the CPU and did not have it (the hypervisor or another process ran instead). Steal time misses much of this on
 * some VMs; a tail percentile cannot be better than the stalls every request is exposed to, so the benchmark records
 * them with the figures. It blocks the event loop for `durationMs`: run it only while nothing is being measured.
 */
export function stallProbe(durationMs: number): StallProbe {
  const start = performance.now();
  let last = start;
  let over1ms = 0;
  let over5ms = 0;
  let maxMs = 0;
  while (last - start < durationMs) {
    const now = performance.now();
    const gap = now - last;
    if (gap > 1) over1ms += 1;
    if (gap > 5) over5ms += 1;
    if (gap > maxMs) maxMs = gap;
    last = now;
  }
  return { ms: last - start, over1ms, over5ms, maxMs };
}

export const stallCell = (p: StallProbe): string =>
  `${(p.ms / 1000).toFixed(0)} s: ${p.over1ms} gaps > 1 ms, ${p.over5ms} > 5 ms, longest ${p.maxMs.toFixed(1)} ms`;

export const ms = (value: number, digits = 2): string =>
  Number.isFinite(value) ? `${value.toFixed(digits)} ms` : 'n/a';
export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
export const seconds = (value: number): string => `${(value / 1000).toFixed(2)} s`;
export const ratio = (value: number, base: number, suffix = '×'): string =>
  base > 0 && Number.isFinite(value) ? `${(value / base).toFixed(2)}${suffix}` : 'n/a';
export const percent = (value: number, base: number): string =>
  base > 0 && Number.isFinite(value) ? `${((value / base) * 100).toFixed(0)}%` : 'n/a';

export function latencyCell(s: LatencySummary): string {
  return `p50 ${s.p50.toFixed(2)} / p90 ${s.p90.toFixed(2)} / p99 ${s.p99.toFixed(2)} ms (n=${s.count})`;
}

export function log(line: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
}

/** Polls until `probe` yields a value; used only to wait for conditions, never to pace a measurement. */
export async function waitUntil<T>(
  description: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 120_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out waiting for ${description}${why}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function sectionMarkdown(section: SectionResult): string {
  const lines = [`### ${section.name}`, '', `Baseline: ${section.baseline}`, ''];
  lines.push('| metric | meshrev | baseline (same run) | ratio |', '|---|---|---|---|');
  for (const row of section.rows) {
    lines.push(
      `| ${escapeCell(row.metric)} | ${escapeCell(row.value)} | ${escapeCell(row.baseline ?? '—')} | ${escapeCell(row.ratio ?? '—')} |`,
    );
  }
  if (section.targets.length > 0) {
    lines.push('', '| target | threshold | measured | met |', '|---|---|---|---|');
    for (const t of section.targets) {
      lines.push(
        `| ${escapeCell(t.name)} | ${escapeCell(t.threshold)} | ${escapeCell(t.measured)} | ${t.met ? 'yes' : '**NO**'} |`,
      );
    }
  }
  if (section.notes.length > 0) {
    lines.push('', ...section.notes.map((n) => `- ${n}`));
  }
  return lines.join('\n');
}

export function machineMarkdown(m: MachineInfo, extra: Record<string, string>): string {
  const rows: [string, string][] = [
    ['date', m.date],
    ['commit', `${m.commit}${m.dirty ? ' (uncommitted changes)' : ''}`],
    ['CPUs (nproc)', String(m.nproc)],
    ['CPU model', m.cpuModel],
    ['memory', `${m.memoryGiB} GiB`],
    ['Node.js', m.node],
    ['platform', m.platform],
    ...Object.entries(extra),
  ];
  return ['| machine | |', '|---|---|', ...rows.map(([k, v]) => `| ${k} | ${escapeCell(v)} |`)].join('\n');
}

export function reportMarkdown(
  m: MachineInfo,
  sections: SectionResult[],
  extra: Record<string, string>,
): string {
  const targets = sections.flatMap((s) => s.targets);
  const met = targets.filter((t) => t.met).length;
  return [
    `## meshrev benchmark results — ${m.date.slice(0, 10)} (${m.commit})`,
    '',
    machineMarkdown(m, extra),
    '',
    `Targets met: **${met} of ${targets.length}**.`,
    '',
    ...sections.flatMap((s) => [sectionMarkdown(s), '']),
  ].join('\n');
}

export const RESULTS_DIR = repoPath('bench', 'results');
const README_BEGIN = '<!-- latest-results:begin -->';
const README_END = '<!-- latest-results:end -->';

/** Writes results/<date>-<commit>.{json,md}, results/latest.md and the table in bench/README.md. */
export async function writeResults(
  m: MachineInfo,
  sectionsOfThisRun: SectionResult[],
  extra: Record<string, string>,
  subdir?: string,
): Promise<{ json: string; md: string }> {
  let sections = sectionsOfThisRun;
  const dir = subdir === undefined ? RESULTS_DIR : join(RESULTS_DIR, subdir);
  mkdirSync(dir, { recursive: true });
  const stem = `${m.date.slice(0, 10)}-${m.commit}`;
  const json = join(dir, `${stem}.json`);
  const md = join(dir, `${stem}.md`);
  // Suites run in separate invocations on the same day and commit end up in one report.
  const suiteOf = (name: string): string => name.split(' ')[0] ?? name;
  const order = ['Injection', 'Reconcile', 'Scale'];
  const kept: SectionResult[] = [];
  if (existsSync(json)) {
    try {
      const previous = JSON.parse(readFileSync(json, 'utf8')) as { sections?: SectionResult[] };
      const fresh = new Set(sections.map((s) => suiteOf(s.name)));
      for (const s of previous.sections ?? []) {
        if (fresh.has(suiteOf(s.name))) continue;
        kept.push({ ...s, notes: [...s.notes, 'From an earlier invocation on the same day and commit.'] });
      }
    } catch {
      // an unreadable earlier file is replaced
    }
  }
  sections = [...kept, ...sections].sort(
    (a, b) => order.indexOf(suiteOf(a.name)) - order.indexOf(suiteOf(b.name)),
  );
  const markdown = reportMarkdown(m, sections, extra) + '\n';
  writeFileSync(
    json,
    JSON.stringify(
      {
        machine: m,
        settings: extra,
        sections: sections.map((s) => ({
          name: s.name,
          baseline: s.baseline,
          rows: s.rows,
          targets: s.targets,
          notes: s.notes,
          data: s.data,
        })),
      },
      null,
      2,
    ) + '\n',
  );
  writeFileSync(md, markdown);
  writeFileSync(join(dir, 'latest.md'), markdown);
  // Only a full run is the reference: a quick run leaves the README table alone.
  if (subdir !== undefined) return { json, md };
  const readme = repoPath('bench', 'README.md');
  if (existsSync(readme)) {
    const text = readFileSync(readme, 'utf8');
    const begin = text.indexOf(README_BEGIN);
    const end = text.indexOf(README_END);
    if (begin !== -1 && end > begin) {
      const latest = markdown.replace(/^## /, '### ').replace(/^### (?!meshrev)/gm, '#### ');
      const updated = `${text.slice(0, begin + README_BEGIN.length)}\n${latest}\n${text.slice(end)}`;
      // The README is checked by `make lint`: keep it in prettier's shape.
      const prettier = await import('prettier');
      const config = (await prettier.resolveConfig(readme)) ?? {};
      writeFileSync(readme, await prettier.format(updated, { ...config, filepath: readme }));
    }
  }
  return { json, md };
}

export function envNumber(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number, got "${raw}"`);
  return value;
}

export function benchDir(...parts: string[]): string {
  return repoPath(...parts);
}
