// Installs meshrev's CRDs (deploy/crds) with server-side apply and waits until the API server serves
// them. Shared by the tests, the benchmarks and the demo.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

import type { KubeClient } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import { repoPath } from './local-cluster.js';

type Crd = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };

export async function installCrds(
  client: KubeClient,
  fieldManager: string,
  timeoutMs = 30_000,
): Promise<void> {
  const dir = repoPath('deploy', 'crds');
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      const crd = doc.toJS() as KubeObject | null;
      if (!crd?.metadata?.name) continue;
      await client.apply(crd, { fieldManager, force: true });
      const ref = {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        name: crd.metadata.name,
      };
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const live = await client.get<Crd>(ref);
        if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) break;
        if (Date.now() > deadline)
          throw new Error(`CRD ${crd.metadata.name} was not Established within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }
}
