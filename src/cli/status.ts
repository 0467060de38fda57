// `meshrev status`: revisions, tags and namespaces with what runs where: the one screen for an upgrade.
import type { Usage } from '../controllers/usage/usage.js';
import { COMMON_FLAGS_HELP, parseCommandArgs } from './args.js';
import { readClusterView, type RevisionSummary, type TagSummary } from './cluster.js';
import { type CliIO, ExitCode } from './io.js';
import { formatCounts, formatTable, orDash, plural, renderStructured } from './output.js';
import { describeError, usageError } from './messages.js';

export const STATUS_HELP = `Usage: meshrev status [-o table|json|yaml]

Shows each ControlPlaneRevision (version, readiness, whether anything uses it), each RevisionTag, and every
namespace with an injection label or injected pods: the label, the revision new pods get, running pods per
injecting revision, and stale pods (injected by a revision the namespace no longer selects; restart them).

Flags:
  -o, --output <format>   table (default), json or yaml

${COMMON_FLAGS_HELP}`;

export interface RevisionStatusRow {
  name: string;
  version?: string;
  ready?: string;
  inUse: boolean;
  namespaces: string[];
  pods: number;
  stalePods: number;
  tags: string[];
  reasons: string[];
}

export interface TagStatusRow {
  name: string;
  revision: string;
  revisionExists: boolean;
  inUse: boolean;
  namespaces: string[];
  pods: number;
}

export interface NamespaceStatusRow {
  name: string;
  label: string;
  disabled: boolean;
  target?: string;
  revision?: string;
  pods: number;
  podsByRevision: Record<string, number>;
  uninjectedPods: number;
  stalePods: number;
}

export interface StatusReport {
  revisions: RevisionStatusRow[];
  tags: TagStatusRow[];
  namespaces: NamespaceStatusRow[];
  /** Pods injected by revisions that are not ControlPlaneRevisions. */
  unmanagedRevisions: Record<string, number>;
}

export function buildStatusReport(
  revisions: readonly RevisionSummary[],
  tags: readonly TagSummary[],
  usage: Usage,
): StatusReport {
  const existing = new Set(revisions.map((revision) => revision.name));
  return {
    revisions: revisions.map((revision) => {
      const use = usage.revisions[revision.name];
      return {
        name: revision.name,
        ...(revision.version === undefined ? {} : { version: revision.version }),
        ...(revision.ready === undefined ? {} : { ready: revision.ready }),
        inUse: use?.inUse ?? false,
        namespaces: use?.namespaces ?? [],
        pods: use?.pods ?? 0,
        stalePods: use?.stalePods ?? 0,
        tags: use?.tags ?? [],
        reasons: use?.reasons ?? [],
      };
    }),
    tags: tags.map((tag) => {
      const use = usage.tags[tag.name];
      return {
        name: tag.name,
        revision: tag.revision,
        revisionExists: existing.has(tag.revision),
        inUse: use?.inUse ?? false,
        namespaces: use?.namespaces ?? [],
        pods: use?.pods ?? 0,
      };
    }),
    namespaces: usage.namespaces.map((ns) => ({
      name: ns.name,
      label: ns.label,
      disabled: ns.via === 'disabled',
      ...(ns.target === undefined ? {} : { target: ns.target }),
      ...(ns.resolvedRevision === undefined ? {} : { revision: ns.resolvedRevision }),
      pods: ns.pods,
      podsByRevision: ns.podsByRevision,
      uninjectedPods: ns.uninjectedPods,
      stalePods: ns.stalePods,
    })),
    unmanagedRevisions: usage.unmanagedRevisions,
  };
}

function yesNo(value: boolean): string {
  return value ? 'yes' : 'no';
}

function namespaceRevisionCell(ns: NamespaceStatusRow, existing: ReadonlySet<string>): string {
  if (ns.disabled) return '- (injection disabled)';
  if (ns.revision !== undefined) return existing.has(ns.revision) ? ns.revision : `${ns.revision} (missing)`;
  if (ns.target !== undefined) return `- (no revision or tag "${ns.target}")`;
  return '-';
}

export function renderStatusTable(report: StatusReport): string {
  const sections: string[] = [];
  sections.push(
    report.revisions.length === 0
      ? 'No ControlPlaneRevisions found.'
      : formatTable(
          ['REVISION', 'VERSION', 'READY', 'IN USE', 'NAMESPACES', 'PODS', 'STALE', 'TAGS'],
          report.revisions.map((revision) => [
            revision.name,
            orDash(revision.version),
            orDash(revision.ready),
            yesNo(revision.inUse),
            String(revision.namespaces.length),
            String(revision.pods),
            String(revision.stalePods),
            revision.tags.length === 0 ? '-' : revision.tags.join(','),
          ]),
        ),
  );
  if (report.tags.length > 0) {
    sections.push(
      formatTable(
        ['TAG', 'REVISION', 'IN USE', 'NAMESPACES', 'PODS'],
        report.tags.map((tag) => [
          tag.name,
          tag.revisionExists ? tag.revision : `${tag.revision} (missing)`,
          yesNo(tag.inUse),
          String(tag.namespaces.length),
          String(tag.pods),
        ]),
      ),
    );
  }
  const existing = new Set(report.revisions.map((revision) => revision.name));
  sections.push(
    report.namespaces.length === 0
      ? 'No namespace has an injection label or injected pods.'
      : formatTable(
          ['NAMESPACE', 'LABEL', 'REVISION', 'PODS BY REVISION', 'NO SIDECAR', 'STALE'],
          report.namespaces.map((ns) => [
            ns.name,
            orDash(ns.label),
            namespaceRevisionCell(ns, existing),
            formatCounts(ns.podsByRevision),
            String(ns.uninjectedPods),
            String(ns.stalePods),
          ]),
        ),
  );
  const notes: string[] = [];
  const unmanaged = formatCounts(report.unmanagedRevisions);
  if (unmanaged !== '-') notes.push(`Pods injected by revisions meshrev does not manage: ${unmanaged}`);
  const staleNamespaces = report.namespaces.filter((ns) => ns.stalePods > 0);
  if (staleNamespaces.length > 0) {
    const stale = staleNamespaces.reduce((sum, ns) => sum + ns.stalePods, 0);
    notes.push(
      `${plural(stale, 'stale pod')} in ${staleNamespaces.map((ns) => ns.name).join(', ')} ` +
        `run a revision their namespace no longer selects; restart them, e.g. ` +
        `meshrev migrate <namespace> --to <revision> --restart`,
    );
  }
  if (notes.length > 0) sections.push(notes.join('\n'));
  return sections.join('\n\n');
}

export async function runStatus(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(args);
  if (!parsed.ok) return usageError(io, parsed.error, STATUS_HELP);
  if (parsed.common.help) {
    io.stdout(STATUS_HELP);
    return ExitCode.Ok;
  }
  if (parsed.positionals.length > 0) {
    return usageError(io, `unexpected argument "${parsed.positionals[0]}"`, STATUS_HELP);
  }
  try {
    const view = await readClusterView(io.kube(parsed.common.connection));
    const report = buildStatusReport(view.revisions, view.tags, view.usage);
    io.stdout(
      parsed.common.output === 'table'
        ? renderStatusTable(report)
        : renderStructured(report, parsed.common.output),
    );
    return ExitCode.Ok;
  } catch (err) {
    io.stderr(`error: ${describeError(err)}`);
    return ExitCode.Error;
  }
}
