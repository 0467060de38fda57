// Starts one real local control plane for the whole integration run (or reuses the cluster that
// MESHREV_TEST_KUBECONFIG points at). Workers read its kubeconfig from MESHREV_TEST_KUBECONFIG.
// Plain JS importing the compiled launcher: jest loads global setup modules outside its transform
// pipeline, and `make test` builds dist/ first.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const launcher = join(repoRoot, 'dist', 'hack', 'cluster', 'local-cluster.js');

export default async function globalSetup() {
  if (!existsSync(launcher)) {
    throw new Error(
      `${launcher} is missing: run \`make build\` (make test does) before the integration tests`,
    );
  }
  const { ensureBinaries, up } = await import(launcher);
  if (process.env.MESHREV_TEST_KUBECONFIG) {
    console.error(`\nusing the cluster at MESHREV_TEST_KUBECONFIG=${process.env.MESHREV_TEST_KUBECONFIG}`);
    process.env.MESHREV_TEST_BIN_DIR = ensureBinaries();
    return;
  }
  const started = Date.now();
  const state = await up({
    // One directory per run, so concurrent runs (and `make cluster-up`'s cluster) never collide.
    stateDir: join(repoRoot, '.cluster', `test-${process.pid}`),
    reuse: false,
    log: (l) => console.error(`[cluster] ${l}`),
  });
  process.env.MESHREV_TEST_KUBECONFIG = state.kubeconfig;
  process.env.MESHREV_TEST_CLUSTER_DIR = state.stateDir;
  process.env.MESHREV_TEST_STARTED_CLUSTER = '1';
  process.env.MESHREV_TEST_BIN_DIR = state.binDir;
  console.error(`[cluster] test cluster ready after ${((Date.now() - started) / 1000).toFixed(1)}s`);
}
