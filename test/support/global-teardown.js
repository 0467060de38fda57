import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export default async function globalTeardown() {
  if (process.env.MESHREV_TEST_STARTED_CLUSTER !== '1' || !process.env.MESHREV_TEST_CLUSTER_DIR) return;
  if (process.env.MESHREV_TEST_KEEP_CLUSTER === '1') {
    console.error(`[cluster] kept running: KUBECONFIG=${process.env.MESHREV_TEST_KUBECONFIG}`);
    return;
  }
  const { down } = await import(join(repoRoot, 'dist', 'hack', 'cluster', 'local-cluster.js'));
  // Logs stay under .cluster/test/logs so a failed run can be read afterwards.
  await down(process.env.MESHREV_TEST_CLUSTER_DIR, {
    keepLogs: true,
    log: (l) => console.error(`[cluster] ${l}`),
  });
}
