// The injector's settings for a revision: what its spec configures for injection (settingsFromRevision), and what
// the revision's istiod finds in its environment, which istiod's own injector reads: its compliance policy, which
// the proxies it injects enforce with it, and the variables custom templates ask for with `env`; and the chart values
// that set that environment, which decide whether proxies mount istiod's root certificate from a ClusterTrustBundle.
import { clusterTrustBundleEnabled, istiodEnvironmentValues } from '../controllers/revision/desired.js';
import type { ControlPlaneRevision } from '../crds/controlplanerevision.js';
import { settingsFromRevision } from '../crds/proxy.js';
import type { InjectorSettings } from './engine/settings.js';

/** The settings `/inject/<revision>` and `meshrev kube-inject` use for `cpr`, running Istio `version`. */
export function injectorSettingsOf(cpr: ControlPlaneRevision, version: string): InjectorSettings {
  const istiodEnvironment = istiodEnvironmentValues(cpr, version);
  return {
    ...settingsFromRevision(cpr.metadata.name, { ...cpr.spec, version }),
    istiodEnvironment,
    compliancePolicy: istiodEnvironment.get('COMPLIANCE_POLICY') ?? '',
    enableClusterTrustBundle: clusterTrustBundleEnabled(cpr),
    pilotEnv: Object.fromEntries(
      Object.entries(cpr.spec.istiod.env ?? {}).map(([name, value]) => [
        name,
        value === 'true' ? true : value === 'false' ? false : value,
      ]),
    ),
  };
}
