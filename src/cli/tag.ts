// `meshrev tag set|list|remove`: RevisionTag objects, with the checks istioctl's tag command makes.
import { tagNameProblems } from '../controllers/common/names.js';
import { DEFAULT_SELECTOR } from '../controllers/usage/selection.js';
import { API_GROUP_VERSION, REVISION_TAG_KIND } from '../crds/constants.js';
import type { Usage } from '../controllers/usage/usage.js';
import { COMMON_FLAGS_HELP, flag, parseCommandArgs, stringOption } from './args.js';
import {
  CLI_FIELD_MANAGER,
  readClusterView,
  readRevisions,
  readTags,
  readUnmanagedDefaultInjector,
  REVISION_TAG,
  type RevisionSummary,
  type TagSummary,
} from './cluster.js';
import { type CliIO, ExitCode } from './io.js';
import { describeError, usageError } from './messages.js';
import { formatTable, plural, renderStructured } from './output.js';

export const TAG_HELP = `Usage:
  meshrev tag set <tag> --revision <revision> [--overwrite] [--force]
  meshrev tag list [-o table|json|yaml]
  meshrev tag remove <tag> [--force]

Revision tags are stable names (e.g. prod, canary, default) that namespaces select with istio.io/rev=<tag>;
moving a tag moves every namespace that selects it at once (pods move when restarted). The tag "default"
also serves namespaces labelled istio-injection=enabled; it is refused while a non-revisioned Istio install
(a MutatingWebhookConfiguration labelled istio.io/rev=default that meshrev does not manage) serves them too.

set flags:
  --revision <revision>  the ControlPlaneRevision the tag points at (required)
  --overwrite            move an existing tag to another revision
  --force                set the "default" tag although a non-revisioned Istio install still injects the
                         same pods (deactivate or remove that install instead)
remove flags:
  --force                remove the tag even though namespaces or pods still select it
list flags:
  -o, --output <format>  table (default), json or yaml

${COMMON_FLAGS_HELP}`;

export async function runTag(args: string[], io: CliIO): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'set':
      return runTagSet(rest, io);
    case 'list':
    case 'ls':
      return runTagList(rest, io);
    case 'remove':
    case 'rm':
    case 'delete':
      return runTagRemove(rest, io);
    case undefined:
      return usageError(io, 'name a tag subcommand: set, list or remove', TAG_HELP);
    case '-h':
    case '--help':
      io.stdout(TAG_HELP);
      return ExitCode.Ok;
    default:
      return usageError(io, `unknown tag subcommand "${sub}"`, TAG_HELP);
  }
}

function tagObject(name: string, revision: string) {
  return { apiVersion: API_GROUP_VERSION, kind: REVISION_TAG_KIND, metadata: { name }, spec: { revision } };
}

function usersOf(tag: string, usage: Usage): string {
  const use = usage.tags[tag];
  if (use === undefined) return '';
  const parts: string[] = [];
  if (use.namespaces.length > 0)
    parts.push(`${plural(use.namespaces.length, 'namespace')} (${use.namespaces.join(', ')})`);
  if (use.pods > 0) parts.push(plural(use.pods, 'running pod'));
  return parts.join(' and ');
}

async function runTagSet(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(args, {
    revision: { type: 'string' },
    overwrite: { type: 'boolean' },
    force: { type: 'boolean' },
  });
  if (!parsed.ok) return usageError(io, parsed.error, TAG_HELP);
  if (parsed.common.help) {
    io.stdout(TAG_HELP);
    return ExitCode.Ok;
  }
  const [name, ...extra] = parsed.positionals;
  if (name === undefined) return usageError(io, 'name the tag to set', TAG_HELP);
  if (extra.length > 0) return usageError(io, `unexpected argument "${extra[0]}"`, TAG_HELP);
  const revision = stringOption(parsed.values, 'revision');
  if (revision === undefined || revision === '')
    return usageError(io, '--revision <revision> is required', TAG_HELP);
  const problems = tagNameProblems(name);
  if (problems.length > 0) return usageError(io, problems.join('; '), TAG_HELP);

  try {
    const kube = io.kube(parsed.common.connection);
    const [revisions, tags, unmanaged] = await Promise.all([
      readRevisions(kube),
      readTags(kube),
      // Only the default tag's webhooks match what a non-revisioned install's do.
      name === DEFAULT_SELECTOR ? readUnmanagedDefaultInjector(kube) : Promise.resolve([]),
    ]);
    const refusal = refuseSet(name, revision, flag(parsed.values, 'overwrite'), revisions, tags);
    if (refusal !== undefined) {
      io.stderr(`error: ${refusal}`);
      return ExitCode.Error;
    }
    const existing = tags.find((tag) => tag.name === name);
    if (existing?.revision === revision) {
      io.stdout(`tag ${name} already points at ${revision}; nothing to change`);
      return ExitCode.Ok;
    }
    const conflict = unmanagedInjectorConflict(name, unmanaged);
    if (conflict !== undefined) {
      if (!flag(parsed.values, 'force')) {
        io.stderr(
          `error: ${conflict}. Deactivate or remove that install first (meshrev never edits objects it does ` +
            'not own), or pass --force; nothing was changed',
        );
        return ExitCode.Error;
      }
      io.stderr(`warning: ${conflict}; setting the tag anyway (--force)`);
    }
    await kube.apply(tagObject(name, revision), { fieldManager: CLI_FIELD_MANAGER });
    if (existing === undefined) {
      io.stdout(`tag ${name} created, pointing at ${revision}`);
    } else {
      io.stdout(
        `tag ${name} moved from ${existing.revision} to ${revision}; running pods keep their proxy until restarted ` +
          `(meshrev status shows them as stale)`,
      );
    }
    return ExitCode.Ok;
  } catch (err) {
    io.stderr(`error: ${describeError(err)}`);
    return ExitCode.Error;
  }
}

/** Why `tag set` must not go ahead, or undefined. */
export function refuseSet(
  name: string,
  revision: string,
  overwrite: boolean,
  revisions: readonly RevisionSummary[],
  tags: readonly TagSummary[],
): string | undefined {
  if (!revisions.some((candidate) => candidate.name === revision)) {
    const known = revisions.map((candidate) => candidate.name).join(', ') || 'none';
    return `revision "${revision}" not found (revisions: ${known})`;
  }
  if (revisions.some((candidate) => candidate.name === name)) {
    // Both webhooks would match istio.io/rev=<name>: pods would be injected twice or unpredictably.
    return `cannot create tag "${name}": a revision has the same name`;
  }
  const existing = tags.find((tag) => tag.name === name);
  if (existing !== undefined && existing.revision !== revision && !overwrite) {
    return `tag "${name}" already points at revision "${existing.revision}"; pass --overwrite to move it to "${revision}"`;
  }
  return undefined;
}

/** Why a tag of this name would inject the same pods as a non-revisioned Istio install's webhooks, or undefined. */
export function unmanagedInjectorConflict(name: string, unmanaged: readonly string[]): string | undefined {
  if (name !== DEFAULT_SELECTOR || unmanaged.length === 0) return undefined;
  const which = `${unmanaged.length === 1 ? 'MutatingWebhookConfiguration' : 'MutatingWebhookConfigurations'} ${unmanaged.join(', ')}`;
  return (
    `${which} (istio.io/rev=default, not managed by meshrev) belongs to a non-revisioned Istio install that ` +
    `injects namespaces labelled istio-injection=enabled; with a "${name}" tag both webhooks would match the ` +
    'same pods and which revision injects them would be unpredictable'
  );
}

async function runTagList(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(args);
  if (!parsed.ok) return usageError(io, parsed.error, TAG_HELP);
  if (parsed.common.help) {
    io.stdout(TAG_HELP);
    return ExitCode.Ok;
  }
  if (parsed.positionals.length > 0)
    return usageError(io, `unexpected argument "${parsed.positionals[0]}"`, TAG_HELP);
  try {
    const view = await readClusterView(io.kube(parsed.common.connection), false);
    const existing = new Set(view.revisions.map((revision) => revision.name));
    const rows = view.tags.map((tag) => ({
      name: tag.name,
      revision: tag.revision,
      revisionExists: existing.has(tag.revision),
      namespaces: view.usage.tags[tag.name]?.namespaces ?? [],
    }));
    if (parsed.common.output !== 'table') {
      io.stdout(renderStructured(rows, parsed.common.output));
    } else if (rows.length === 0) {
      io.stdout('No revision tags found.');
    } else {
      io.stdout(
        formatTable(
          ['TAG', 'REVISION', 'NAMESPACES'],
          rows.map((row) => [
            row.name,
            row.revisionExists ? row.revision : `${row.revision} (missing)`,
            row.namespaces.length === 0 ? '-' : row.namespaces.join(','),
          ]),
        ),
      );
    }
    return ExitCode.Ok;
  } catch (err) {
    io.stderr(`error: ${describeError(err)}`);
    return ExitCode.Error;
  }
}

async function runTagRemove(args: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(args, { force: { type: 'boolean' } });
  if (!parsed.ok) return usageError(io, parsed.error, TAG_HELP);
  if (parsed.common.help) {
    io.stdout(TAG_HELP);
    return ExitCode.Ok;
  }
  const [name, ...extra] = parsed.positionals;
  if (name === undefined) return usageError(io, 'name the tag to remove', TAG_HELP);
  if (extra.length > 0) return usageError(io, `unexpected argument "${extra[0]}"`, TAG_HELP);
  try {
    const kube = io.kube(parsed.common.connection);
    const view = await readClusterView(kube);
    if (!view.tags.some((tag) => tag.name === name)) {
      io.stderr(`error: tag "${name}" not found`);
      return ExitCode.Error;
    }
    const users = usersOf(name, view.usage);
    if (users !== '') {
      const consequence = `new pods there would get no sidecar once the tag is gone`;
      if (!flag(parsed.values, 'force')) {
        io.stderr(
          `error: tag "${name}" is still selected by ${users}; ${consequence}. ` +
            `Move them first (meshrev migrate <namespace> --to <revision>) or pass --force`,
        );
        return ExitCode.Error;
      }
      io.stderr(`warning: removing tag "${name}", which is still selected by ${users}; ${consequence}`);
    }
    await kube.delete({ ...REVISION_TAG, name });
    io.stdout(`tag ${name} removed`);
    return ExitCode.Ok;
  } catch (err) {
    io.stderr(`error: ${describeError(err)}`);
    return ExitCode.Error;
  }
}
