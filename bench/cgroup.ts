// A memory cgroup for a benchmark child process, so the operator runs under the memory limit its Deployment gives
// it (deploy/deployment.yaml), as the kubelet would run it: the kernel enforces the limit, and Node sizes V8's heap
// from it (the cgroup's limit, not the machine's memory). Creating one needs a writable cgroup hierarchy (root, or
// a delegated subtree); where there is none the caller runs the process unconfined and says so.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

import { repoPath } from '../hack/cluster/local-cluster.js';

export interface MemoryCgroup {
  readonly path: string;
  readonly limitBytes: number;
  /** The command and arguments that start `command` inside this cgroup (a shell that joins it, then execs). */
  wrap(command: string, args: readonly string[]): [string, string[]];
  /** The most memory the cgroup has been charged since it was made (page cache included, as the kernel counts it). */
  peakBytes(): number | undefined;
  /** Processes the kernel killed in it for want of memory. */
  oomKills(): number | undefined;
  /** Removes the cgroup; its processes must have exited. */
  remove(): void;
}

const QUANTITY = /^(\d+)(Ki|Mi|Gi)?$/;
const UNIT: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };

/** A memory quantity as manifests spell limits (`512Mi`), in bytes; undefined for forms this file does not read. */
export function memoryQuantityBytes(quantity: string): number | undefined {
  const m = QUANTITY.exec(quantity);
  return m ? Number(m[1]) * UNIT[m[2] ?? '']! : undefined;
}

/**
 * A command line that starts `command` with `args` inside the cgroup whose process list is `procsFile`: a shell writes
 * its own pid there and then execs the command, which keeps that pid (and the IPC channel, if any).
 */
export function commandInCgroup(
  procsFile: string,
  command: string,
  args: readonly string[],
): [string, string[]] {
  return ['/bin/sh', ['-c', 'echo $$ > "$0" && exec "$@"', procsFile, command, ...args]];
}

/** The operator container's memory limit in the shipped Deployment, in bytes. */
export function deploymentMemoryLimitBytes(): number {
  const text = readFileSync(repoPath('deploy', 'deployment.yaml'), 'utf8');
  for (const doc of parseAllDocuments(text)) {
    const obj = doc.toJS() as {
      kind?: string;
      spec?: {
        template?: { spec?: { containers?: Array<{ resources?: { limits?: { memory?: string } } }> } };
      };
    } | null;
    if (obj?.kind !== 'Deployment') continue;
    const bytes = memoryQuantityBytes(
      obj.spec?.template?.spec?.containers?.[0]?.resources?.limits?.memory ?? '',
    );
    if (bytes !== undefined) return bytes;
  }
  throw new Error('deploy/deployment.yaml: no memory limit on the operator container');
}

function readNumber(file: string, field?: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8');
    if (field === undefined) return Number(text.trim());
    const m = new RegExp(`^${field} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Where this process sits in the memory hierarchy: cgroup v1's memory controller, or the unified (v2) tree. */
function ownMemoryCgroup(): { version: 1 | 2; dir: string } | string {
  let lines: string[];
  try {
    lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  } catch {
    return 'no /proc/self/cgroup';
  }
  for (const line of lines) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m?.[1]?.split(',').includes('memory')) return { version: 1, dir: `/sys/fs/cgroup/memory${m[2]}` };
  }
  const unified = lines.find((l) => l.startsWith('0::'));
  if (unified !== undefined) return { version: 2, dir: `/sys/fs/cgroup${unified.slice(3)}` };
  return 'no memory cgroup controller';
}

/** A new memory cgroup limited to `limitBytes` under this process's own, or the reason there cannot be one. */
export function createMemoryCgroup(name: string, limitBytes: number): MemoryCgroup | string {
  const own = ownMemoryCgroup();
  if (typeof own === 'string') return own;
  const path = `${own.dir.replace(/\/$/, '')}/${name}`;
  const files =
    own.version === 1
      ? { limit: 'memory.limit_in_bytes', peak: 'memory.max_usage_in_bytes', events: 'memory.oom_control' }
      : { limit: 'memory.max', peak: 'memory.peak', events: 'memory.events' };
  try {
    mkdirSync(path);
  } catch (error) {
    return `cannot create a memory cgroup under ${own.dir}: ${(error as Error).message}`;
  }
  try {
    writeFileSync(`${path}/${files.limit}`, String(limitBytes));
  } catch (error) {
    rmdirSync(path);
    return `cannot limit memory in ${path} (is the memory controller delegated?): ${(error as Error).message}`;
  }
  return {
    path,
    limitBytes,
    wrap: (command, args) => commandInCgroup(`${path}/cgroup.procs`, command, args),
    peakBytes: () => readNumber(`${path}/${files.peak}`),
    oomKills: () => readNumber(`${path}/${files.events}`, 'oom_kill'),
    remove: () => rmdirSync(path),
  };
}
