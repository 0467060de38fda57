// The scale benchmark runs the operator under its Deployment's memory limit (bench/cgroup.ts). These tests hold the
// limit it reads to the shipped manifests and check that the command wrapper starts the process unchanged and
// records its pid where the kernel expects it.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';

import { commandInCgroup, deploymentMemoryLimitBytes, memoryQuantityBytes } from '../../../bench/cgroup.js';
import { repoPath } from '../../../hack/cluster/local-cluster.js';

describe('memoryQuantityBytes', () => {
  it.each([
    ['512Mi', 512 * 2 ** 20],
    ['1Gi', 2 ** 30],
    ['64Ki', 64 * 2 ** 10],
    ['1000', 1000],
  ])('reads %s', (quantity, bytes) => {
    expect(memoryQuantityBytes(quantity)).toBe(bytes);
  });

  it.each(['', '512M', '0.5Gi', 'Mi', '512 Mi'])('does not guess at %j', (quantity) => {
    expect(memoryQuantityBytes(quantity)).toBeUndefined();
  });
});

describe('deploymentMemoryLimitBytes', () => {
  it("is the chart's default memory limit too, so the benchmark measures against what either install ships", () => {
    const values = parse(readFileSync(repoPath('deploy', 'charts', 'meshrev', 'values.yaml'), 'utf8')) as {
      resources: { limits: { memory: string } };
    };
    expect(deploymentMemoryLimitBytes()).toBe(memoryQuantityBytes(values.resources.limits.memory));
  });
});

describe('commandInCgroup', () => {
  it('writes the process id to the procs file, then runs the command with its arguments untouched', () => {
    const dir = mkdtempSync(join(tmpdir(), 'meshrev-cgroup-'));
    try {
      const procs = join(dir, 'cgroup.procs');
      const args = [
        '-e',
        'console.log(JSON.stringify([process.pid, ...process.argv.slice(1)]))',
        'a b',
        '$HOME',
        '"q"',
      ];
      const [command, wrapped] = commandInCgroup(procs, process.execPath, args);
      const run = spawnSync(command, wrapped, { encoding: 'utf8' });
      expect(run.status).toBe(0);
      const [pid, ...argv] = JSON.parse(run.stdout) as [number, ...string[]];
      expect(argv).toEqual(['a b', '$HOME', '"q"']);
      // exec keeps the shell's pid, so the pid written is the command's own.
      expect(Number(readFileSync(procs, 'utf8').trim())).toBe(pid);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
