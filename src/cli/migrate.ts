// `meshrev migrate`: move namespaces to a revision or tag, optionally restart their workloads and wait.
import {
  COMMON_FLAGS_HELP,
  flag,
  formatDuration,
  parseCommandArgs,
  parseDuration,
  stringOption,
} from './args.js';
import {
  classicInjectorNote,
  lookupTarget,
  type NamespaceMeta,
  readinessProblem,
  readMeshView,
  readNamespace,
} from './cluster.js';
import { type CliIO, ExitCode } from './io.js';
import { describeError, usageError } from './messages.js';
import { executeMoves } from './move.js';
import { planRelabel } from './relabel.js';
import { injectionView } from './rollout.js';

export const DEFAULT_TIMEOUT_MS = 5 * 60_000;

export const MIGRATE_HELP = `Usage: meshrev migrate <namespace>... --to <revision|tag> [--restart] [--dry-run] [--timeout 5m] [--force]

Moves namespaces to a revision or tag as Istio's upgrade guide says: removes the istio-injection label and
sets istio.io/rev=<revision|tag>. The label set before is recorded in the namespace annotation
meshrev.dev/previous-revision, so 'meshrev rollback' can return to it.

Running pods keep their proxy until they are recreated. With --restart, the namespace's Deployments,
StatefulSets and DaemonSets are restarted as 'kubectl rollout restart' does, and the command waits, printing
progress, until every pod of them runs the new revision or the timeout passes. Workloads whose pods the
injector never gives a sidecar (host network, kube-system and other ignored namespaces, opted out) are left
alone. Paused Deployments, OnDelete workloads and partitioned StatefulSets are not moved by a restart: their
pods left on another revision are listed with what to do, and the command exits with code 3.

The target revision must be Ready; a revision that is not, or has not reported yet, is refused unless --force.

Flags:
  --to <revision|tag>   the ControlPlaneRevision or RevisionTag to move to (required)
  --restart             restart the workloads and wait for their pods to move
  --dry-run             print what would change and change nothing
  --timeout <duration>  how long to wait for pods with --restart (default 5m)
  --force               move even when the target revision is not Ready

Exit codes: 0 done, 1 error (e.g. unknown or unready revision, unknown namespace), 2 usage error,
3 pods left on another revision (timed out, or in workloads a restart does not move).

${COMMON_FLAGS_HELP}`;

export async function runMigrate(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(args, {
    to: { type: 'string' },
    restart: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    timeout: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (!parsed.ok) return usageError(io, parsed.error, MIGRATE_HELP);
  if (parsed.common.help) {
    io.stdout(MIGRATE_HELP);
    return ExitCode.Ok;
  }
  const to = stringOption(parsed.values, 'to');
  if (to === undefined || to === '') return usageError(io, '--to <revision|tag> is required', MIGRATE_HELP);
  if (parsed.positionals.length === 0) return usageError(io, 'name at least one namespace', MIGRATE_HELP);
  const timeoutText = stringOption(parsed.values, 'timeout');
  const timeoutMs = timeoutText === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(timeoutText);
  if (timeoutMs === undefined) {
    return usageError(io, `invalid --timeout "${timeoutText}" (use e.g. 90s, 5m, 1h)`, MIGRATE_HELP);
  }
  const namespaces = [...new Set(parsed.positionals)];

  try {
    const kube = io.kube(parsed.common.connection);
    const { revisions, tags, classic, world } = await readMeshView(kube);
    const target = lookupTarget(to, revisions, tags, classic);
    if (!target.found) {
      io.stderr(`error: ${target.message}`);
      return ExitCode.Error;
    }
    if (classic !== undefined && target.revision === classic.revision)
      io.stdout(classicInjectorNote(classic));
    const unready = readinessProblem(target.revision, revisions);
    if (unready !== undefined) {
      const what = target.kind === 'tag' ? `tag ${target.name} points at ${unready}` : unready;
      if (!flag(parsed.values, 'force')) {
        io.stderr(
          `error: ${what}; wait until it is Ready (meshrev status) or pass --force to move anyway; nothing was changed`,
        );
        return ExitCode.Error;
      }
      io.stderr(`warning: ${what}; moving anyway (--force)`);
    }
    const found: NamespaceMeta[] = [];
    const missing: string[] = [];
    for (const name of namespaces) {
      const ns = await readNamespace(kube, name);
      if (ns === undefined) missing.push(name);
      else found.push(ns);
    }
    if (missing.length > 0) {
      io.stderr(
        `error: namespace${missing.length === 1 ? '' : 's'} not found: ${missing.join(', ')}; nothing was changed`,
      );
      return ExitCode.Error;
    }
    const via = target.kind === 'tag' ? ` (tag ${target.name} -> ${target.revision})` : '';
    io.stdout(
      `Migrating ${namespaces.join(', ')} to ${target.name}${via}` +
        (parsed.values.restart === true ? `, waiting up to ${formatDuration(timeoutMs)}` : ''),
    );
    const plans = found.map((ns) => planRelabel(ns, { kind: 'revision', value: target.name }));
    return await executeMoves(
      plans,
      injectionView(world, revisions),
      {
        restart: flag(parsed.values, 'restart'),
        dryRun: flag(parsed.values, 'dry-run'),
        timeoutMs,
        restartHint: (namespace) => `meshrev migrate ${namespace} --to ${target.name} --restart`,
      },
      kube,
      io,
    );
  } catch (err) {
    io.stderr(`error: ${describeError(err)}`);
    return ExitCode.Error;
  }
}
