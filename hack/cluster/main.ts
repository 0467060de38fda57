#!/usr/bin/env node
// `make cluster-up` / `make cluster-down` entry point: node dist/hack/cluster/main.js up|down|status [stateDir]
import { down, readState, clusterHealthy, up, repoPath } from './local-cluster.js';

async function main(): Promise<number> {
  const [command, dirArg] = process.argv.slice(2);
  const stateDir = dirArg ?? process.env.MESHREV_CLUSTER_DIR ?? repoPath('.cluster');
  switch (command) {
    case 'up': {
      const state = await up({ stateDir });
      console.log(`
Local cluster is up (Kubernetes ${state.k8sVersion}, API server ${state.server}).
  export KUBECONFIG=${state.kubeconfig}
  kubectl get nodes            # kubectl is at ${state.binDir}/kubectl
Component logs: ${state.stateDir}/logs/. Stop it with: make cluster-down`);
      return 0;
    }
    case 'down':
      await down(stateDir);
      return 0;
    case 'status': {
      const state = readState(stateDir);
      if (!state) {
        console.log(`no cluster in ${stateDir}`);
        return 1;
      }
      const healthy = await clusterHealthy(state);
      console.log(
        `${state.name} ${healthy ? 'healthy' : 'NOT healthy'} ${state.server} kubeconfig=${state.kubeconfig}`,
      );
      return healthy ? 0 : 1;
    }
    default:
      console.error('usage: main.js up|down|status [stateDir]');
      return 2;
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`error: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
