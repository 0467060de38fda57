// Dev webhook routing (`make run`, the integration tests): the operator runs outside the cluster, on the
// machine that runs kube-apiserver, so the webhook configurations must reach it there.
import type { Logger } from 'pino';

import type { OperatorConfig } from '../config.js';
import type { KubeClient } from '../runtime/kube.js';
import type { KubeObject } from '../runtime/types.js';

/**
 * For local runs against a cluster without kube-proxy: the injector Service becomes an ExternalName
 * to localhost, so kube-apiserver calls this process at https://localhost:<injector port>.
 */
export async function routeInjectorServiceToLocalhost(
  client: KubeClient,
  config: OperatorConfig,
  logger: Logger,
): Promise<void> {
  // Only when missing: the operator's ClusterRole may read namespaces but not patch them.
  if (!(await client.getOptional({ apiVersion: 'v1', kind: 'Namespace', name: config.namespace }))) {
    await client.apply(
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: config.namespace } },
      { fieldManager: `${config.fieldManager}-dev`, force: true },
    );
  }
  await client.apply(
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: config.injectorServiceName,
        namespace: config.namespace,
        labels: { 'app.kubernetes.io/name': 'meshrev', 'meshrev.dev/dev-routing': 'true' },
      },
      spec: { type: 'ExternalName', externalName: 'localhost' },
    } as KubeObject,
    { fieldManager: `${config.fieldManager}-dev`, force: true },
  );
  logger.info(
    { service: `${config.namespace}/${config.injectorServiceName}`, port: config.injectorPort },
    'dev webhook routing: injector Service points at localhost',
  );
}
