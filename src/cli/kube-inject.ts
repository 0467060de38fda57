// `meshrev kube-inject`: the injection engine offline. GitOps users pre-render manifests with it, and
// anyone can check what a revision would inject without a cluster.
import { readFileSync } from 'node:fs';
import { parseAllDocuments, stringify } from 'yaml';

import { parseControlPlaneRevision } from '../crds/controlplanerevision.js';
import { kubeInjectDocuments } from '../injector/engine/index.js';
import { injectorSettingsOf } from '../injector/revision-settings.js';
import { COMMON_FLAGS_HELP, parseCommandArgs, stringOption } from './args.js';
import { CONTROL_PLANE_REVISION } from './cluster.js';
import { ExitCode, type CliIO } from './io.js';

const HELP = `usage: meshrev kube-inject -f <file|-> (--revision-file <cpr.yaml> | --revision <name>) [--native-sidecars auto|true|false]

Prints the manifests with the sidecar injected as the revision's injector would do it: Pods, Deployments,
StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers, Jobs, CronJobs and Lists; other objects pass
through unchanged.

  -f, --filename <file|->     manifests to inject (- reads standard input)
  --revision-file <file>      a ControlPlaneRevision manifest to take the settings from (offline)
  --revision <name>           read the ControlPlaneRevision from the cluster
  --kubelet-minor <n>         kubelet minor version assumed for native-sidecar 'auto' (default 34)

${COMMON_FLAGS_HELP}`;

export async function runKubeInject(
  args: string[],
  io: CliIO,
  readStdin: () => string = () => readFileSync(0, 'utf8'),
): Promise<number> {
  const parsed = parseCommandArgs(args, {
    filename: { type: 'string', short: 'f' },
    'revision-file': { type: 'string' },
    revision: { type: 'string' },
    'kubelet-minor': { type: 'string' },
  });
  if (!parsed.ok) {
    io.stderr(`error: ${parsed.error}\n${HELP}`);
    return ExitCode.Usage;
  }
  if (parsed.common.help) {
    io.stdout(HELP);
    return ExitCode.Ok;
  }
  const file = stringOption(parsed.values, 'filename');
  const revisionFile = stringOption(parsed.values, 'revision-file');
  const revisionName = stringOption(parsed.values, 'revision');
  if (!file || (revisionFile === undefined) === (revisionName === undefined)) {
    io.stderr(`error: give -f and exactly one of --revision-file or --revision\n${HELP}`);
    return ExitCode.Usage;
  }
  const kubeletMinor = Number(stringOption(parsed.values, 'kubelet-minor') ?? '34');
  if (!Number.isInteger(kubeletMinor) || kubeletMinor < 0) {
    io.stderr('error: --kubelet-minor must be a whole number');
    return ExitCode.Usage;
  }

  try {
    const revisionObject: unknown = revisionFile
      ? parseAllDocuments(readFileSync(revisionFile, 'utf8'))[0]?.toJS()
      : await io.kube(parsed.common.connection).get({ ...CONTROL_PLANE_REVISION, name: revisionName ?? '' });
    const revision = parseControlPlaneRevision(revisionObject);
    if (!revision.ok) {
      io.stderr(`error: the ControlPlaneRevision is not valid:\n${revision.error}`);
      return ExitCode.Error;
    }
    const cpr = revision.value;
    const version = cpr.status?.version ?? cpr.spec.version;
    if (!version) {
      io.stderr(
        `error: revision "${cpr.metadata.name}" follows channel "${cpr.spec.channel}" and has not resolved a version yet; ` +
          'give a revision file with spec.version, or read it from a cluster where meshrev reconciled it',
      );
      return ExitCode.Error;
    }
    const settings = injectorSettingsOf(cpr, version);
    const text = file === '-' ? readStdin() : readFileSync(file, 'utf8');
    const documents = parseAllDocuments(text);
    for (const doc of documents) {
      if (doc.errors.length > 0) {
        io.stderr(`error: ${file}: ${doc.errors[0]?.message ?? 'invalid YAML'}`);
        return ExitCode.Error;
      }
    }
    const input = documents.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined);
    const output = kubeInjectDocuments(input, settings, {
      nodeKubeletMinorVersions: [kubeletMinor],
      warn: (message) => io.stderr(`warning: ${message}`),
    });
    io.stdout(output.map((doc) => stringify(doc, { lineWidth: 0 })).join('---\n'));
    return ExitCode.Ok;
  } catch (err) {
    io.stderr(`error: ${err instanceof Error ? err.message : String(err)}`);
    return ExitCode.Error;
  }
}
