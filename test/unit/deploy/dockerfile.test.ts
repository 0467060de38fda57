import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

import type { V1Deployment } from '@kubernetes/client-node';

import { OPERATOR_NODE_FLAGS } from '../../../src/cli/node-flags.js';
import { findObject, kustomizeObjects, REPO_ROOT } from './manifests.js';

interface Instruction {
  keyword: string;
  argument: string;
}

interface Stage {
  from: string;
  instructions: Instruction[];
}

function readInstructions(): Instruction[] {
  const text = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ');
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [keyword = '', ...rest] = line.split(/\s+/);
      return { keyword: keyword.toUpperCase(), argument: rest.join(' ') };
    });
}

function stages(instructions: Instruction[]): Stage[] {
  const result: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') result.push({ from: instruction.argument, instructions: [] });
    else result.at(-1)?.instructions.push(instruction);
  }
  return result;
}

const instructions = readInstructions();
const allStages = stages(instructions);
const runtime = allStages.at(-1)!;
const argDefaults = Object.fromEntries(
  instructions
    .filter((instruction) => instruction.keyword === 'ARG' && instruction.argument.includes('='))
    .map((instruction) => instruction.argument.split('=') as [string, string]),
);

function resolveImage(reference: string): string {
  const image = reference.split(/\s+AS\s+/i)[0]!;
  return image.replace(/\$\{(\w+)\}/g, (_match, name: string) => argDefaults[name] ?? '');
}

function runtimeArgument(keyword: string): string | undefined {
  return runtime.instructions.filter((instruction) => instruction.keyword === keyword).at(-1)?.argument;
}

describe('Dockerfile', () => {
  it('builds on Node 24 and runs from a fresh Node 24 stage', () => {
    expect(allStages.length).toBeGreaterThanOrEqual(2);
    expect(allStages.map((stage) => resolveImage(stage.from))).toEqual(
      allStages.map(() => 'node:24-bookworm-slim'),
    );
  });

  it('compiles with the package build script and installs only production dependencies for the runtime', () => {
    const runs = allStages.flatMap((stage) =>
      stage.instructions.filter((instruction) => instruction.keyword === 'RUN'),
    );
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts['build']).toBeDefined();
    expect(runs.some((run) => run.argument === 'npm run build')).toBe(true);
    expect(runs.some((run) => /npm ci .*--omit=dev/.test(run.argument))).toBe(true);
  });

  it('copies only package.json, production node_modules, the compiled operator and the CRDs into the image', () => {
    const copies = runtime.instructions
      .filter((instruction) => instruction.keyword === 'COPY')
      .map((instruction) => instruction.argument);
    expect(copies).toEqual([
      'package.json ./',
      '--from=production-deps /src/node_modules ./node_modules',
      '--from=build /src/dist/src ./dist/src',
      'deploy/crds ./deploy/crds',
    ]);
    const dependencyStage = allStages.find((stage) => /\bAS production-deps$/.test(stage.from))!;
    expect(dependencyStage.instructions.some((instruction) => /--omit=dev/.test(instruction.argument))).toBe(
      true,
    );
  });

  it('runs as the non-root user the Deployment expects', () => {
    const deployment = findObject(kustomizeObjects(), 'Deployment', 'meshrev') as unknown as V1Deployment;
    expect(runtimeArgument('USER')).toBe('65532:65532');
    expect(deployment.spec!.template.spec!.securityContext!.runAsUser).toBe(65532);
  });

  it('starts the operator subcommand of the CLI with the operator V8 flags', () => {
    expect(JSON.parse(runtimeArgument('ENTRYPOINT')!)).toEqual([
      'node',
      ...OPERATOR_NODE_FLAGS,
      'dist/src/cli/main.js',
    ]);
    expect(JSON.parse(runtimeArgument('CMD')!)).toEqual(['operator']);
  });

  it('gives `make run` and `make bench` the same V8 flags as the image', () => {
    const makefile = readFileSync(join(REPO_ROOT, 'Makefile'), 'utf8');
    const declared = /^OPERATOR_NODE_FLAGS := (.*)$/m.exec(makefile)?.[1];
    expect(declared?.split(' ')).toEqual([...OPERATOR_NODE_FLAGS]);
    const recipe = (target: string) =>
      new RegExp(`^${target}:.*\\n((?:\\t.*\\n)+)`, 'm').exec(makefile)?.[1] ?? '';
    expect(recipe('run')).toContain('$(NODE) $(OPERATOR_NODE_FLAGS) dist/src/cli/main.js operator');
    expect(recipe('bench')).toContain('$(OPERATOR_NODE_FLAGS) dist/bench/run.js');
  });

  it('points the entry point at the file tsc emits for src/cli/main.ts', () => {
    const build = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
      compilerOptions: { rootDir: string; outDir: string };
    };
    const rootDir = join(REPO_ROOT, build.compilerOptions.rootDir);
    const emitted = join(build.compilerOptions.outDir, relative(rootDir, join(REPO_ROOT, 'src/cli/main.ts')));
    expect(build.include).toContain('src');
    expect((JSON.parse(runtimeArgument('ENTRYPOINT')!) as string[]).at(-1)).toBe(
      emitted.replace(/\.ts$/, '.js'),
    );
  });
});

describe('.dockerignore', () => {
  const patterns = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));

  it('starts from an empty build context, so node_modules, dist, .git and .cluster never reach it', () => {
    expect(patterns[0]).toBe('*');
    const included = patterns.filter((pattern) => pattern.startsWith('!'));
    expect(included.filter((pattern) => /node_modules|dist|\.git|\.cluster/.test(pattern))).toEqual([]);
  });

  it('lets in every input of npm ci and the TypeScript build, and the CRDs', () => {
    const build = JSON.parse(readFileSync(join(REPO_ROOT, 'tsconfig.build.json'), 'utf8')) as {
      include: string[];
    };
    const needed = [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'tsconfig.build.json',
      'deploy/crds/',
      ...build.include.map((directory) => `${directory}/`),
    ];
    expect(needed.filter((path) => !patterns.includes(`!${path}`))).toEqual([]);
  });
});
