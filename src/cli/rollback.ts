// `meshrev rollback`: return namespaces to the label set the last migrate (or rollback) recorded.
import { resolveDefault, resolveNamespace } from '../controllers/usage/selection.js';
import { COMMON_FLAGS_HELP, flag, parseCommandArgs, parseDuration, stringOption } from './args.js';
import {
  classicInjectorNote,
  lookupTarget,
  readinessProblem,
  readMeshView,
  readNamespace,
} from './cluster.js';
import { type CliIO, ExitCode } from './io.js';
import { describeError, usageError } from './messages.js';
import { DEFAULT_TIMEOUT_MS } from './migrate.js';
import { executeMoves } from './move.js';
import {
  decodeSetting,
  describeSetting,
  planRelabel,
  PREVIOUS_REVISION_ANNOTATION,
  type RelabelPlan,
} from './relabel.js';
import { injectionView } from './rollout.js';

export const ROLLBACK_HELP = `Usage: meshrev rollback <namespace>... [--restart] [--dry-run] [--timeout 5m] [--force]

Moves each namespace back to the injection label recorded in its meshrev.dev/previous-revision annotation
by 'meshrev migrate'. The annotation is updated to the label set being left, so a second rollback goes
forward again. With --restart, workloads are restarted and waited for as with 'meshrev migrate --restart'.

The revision a namespace goes back to must be Ready; one that is not, or has not reported yet, is refused
unless --force.

Flags:
  --restart             restart the workloads and wait for their pods to move
  --dry-run             print what would change and change nothing
  --timeout <duration>  how long to wait for pods with --restart (default 5m)
  --force               move even when the revision gone back to is not Ready

Exit codes: 0 done, 1 error (e.g. nothing recorded, unready revision), 2 usage error,
3 pods left on another revision (timed out, or in workloads a restart does not move).

${COMMON_FLAGS_HELP}`;

export async function runRollback(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(args, {
    restart: { type: 'boolean' },
    'dry-run': { type: 'boolean' },
    timeout: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (!parsed.ok) return usageError(io, parsed.error, ROLLBACK_HELP);
  if (parsed.common.help) {
    io.stdout(ROLLBACK_HELP);
    return ExitCode.Ok;
  }
  if (parsed.positionals.length === 0) return usageError(io, 'name at least one namespace', ROLLBACK_HELP);
  const timeoutText = stringOption(parsed.values, 'timeout');
  const timeoutMs = timeoutText === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(timeoutText);
  if (timeoutMs === undefined) {
    return usageError(io, `invalid --timeout "${timeoutText}" (use e.g. 90s, 5m, 1h)`, ROLLBACK_HELP);
  }
  const namespaces = [...new Set(parsed.positionals)];

  try {
    const kube = io.kube(parsed.common.connection);
    const { revisions, tags, classic, world } = await readMeshView(kube);
    const plans: RelabelPlan[] = [];
    const problems: string[] = [];
    for (const name of namespaces) {
      const ns = await readNamespace(kube, name);
      if (ns === undefined) {
        problems.push(`namespace ${name} not found`);
        continue;
      }
      const recorded = ns.annotations[PREVIOUS_REVISION_ANNOTATION];
      if (recorded === undefined) {
        problems.push(
          `namespace ${name} has no ${PREVIOUS_REVISION_ANNOTATION} annotation: it was not migrated by meshrev; ` +
            'use meshrev migrate --to <revision|tag>',
        );
        continue;
      }
      const previous = decodeSetting(recorded);
      if (previous.kind === 'revision') {
        const target = lookupTarget(previous.value, revisions, tags, classic);
        if (!target.found) {
          problems.push(`namespace ${name} was on ${previous.value}, which is gone: ${target.message}`);
          continue;
        }
      }
      if (
        previous.kind === 'injection' &&
        previous.value === 'enabled' &&
        resolveDefault(world).revision === undefined
      ) {
        io.stderr(
          `warning: ${name} goes back to istio-injection=enabled, but no "default" tag or revision exists: new pods get no sidecar`,
        );
      }
      const plan = planRelabel(ns, previous);
      // Whatever revision new pods get once moved back (istio-injection=enabled reaches it through `default`).
      const revision = resolveNamespace(plan.labelsAfter, world).revision;
      if (classic !== undefined && revision === classic.revision) {
        io.stdout(`${name}: ${classicInjectorNote(classic)}`);
      }
      const unready = revision === undefined ? undefined : readinessProblem(revision, revisions);
      if (unready !== undefined) {
        const what = `namespace ${name} would go back to ${describeSetting(previous)}, but ${unready}`;
        if (!flag(parsed.values, 'force')) {
          problems.push(`${what}; wait until it is Ready (meshrev status) or pass --force to move anyway`);
          continue;
        }
        io.stderr(`warning: ${what}; moving anyway (--force)`);
      }
      plans.push(plan);
    }
    if (problems.length > 0) {
      for (const problem of problems) io.stderr(`error: ${problem}`);
      io.stderr('nothing was changed');
      return ExitCode.Error;
    }
    io.stdout(
      `Rolling back ${plans.map((plan) => `${plan.namespace} to ${describeSetting(plan.to)}`).join(', ')}`,
    );
    return await executeMoves(
      plans,
      injectionView(world, revisions),
      {
        restart: flag(parsed.values, 'restart'),
        dryRun: flag(parsed.values, 'dry-run'),
        timeoutMs,
        restartHint: (namespace) =>
          `kubectl rollout restart deployment,statefulset,daemonset -n ${namespace}`,
      },
      kube,
      io,
    );
  } catch (err) {
    io.stderr(`error: ${describeError(err)}`);
    return ExitCode.Error;
  }
}
