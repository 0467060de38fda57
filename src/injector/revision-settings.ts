// The injector's settings for a revision: what its spec configures for injection (settingsFromRevision), and what
// the revision's istiod finds in its environment, which istiod's own injector reads: its compliance policy, which
// the proxies it injects enforce with it, its native-sidecar mode, and the variables custom templates ask for with
// `env`; and the chart values that set that environment, which decide whether proxies mount istiod's root
// certificate from a ClusterTrustBundle.
import { clusterTrustBundleEnabled, istiodEnvironmentValues } from '../controllers/revision/desired.js';
import type { ControlPlaneRevision } from '../crds/controlplanerevision.js';
import { settingsFromRevision } from '../crds/proxy.js';
import type { InjectorSettings, NativeSidecarMode } from './engine/settings.js';

/** The settings `/inject/<revision>` and `meshrev kube-inject` use for `cpr`, running Istio `version`. */
export function injectorSettingsOf(cpr: ControlPlaneRevision, version: string): InjectorSettings {
  const istiodEnvironment = istiodEnvironmentValues(cpr, version);
  const settings = settingsFromRevision(cpr.metadata.name, { ...cpr.spec, version });
  return {
    ...settings,
    nativeSidecars: nativeSidecarMode(
      settings.nativeSidecars,
      istiodEnvironment.get('ENABLE_NATIVE_SIDECARS'),
    ),
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

/**
 * istiod's injector takes its native-sidecar mode from ENABLE_NATIVE_SIDECARS (`true`, `false` or `auto`; anything
 * else turns them off). `spec.proxy.nativeSidecars` set to `true` or `false` decides; left at `auto`, istiod's
 * variable in `spec.istiod.env` does, as it would for istiod's own injector.
 */
function nativeSidecarMode(
  fromSpec: NativeSidecarMode,
  fromEnvironment: string | undefined,
): NativeSidecarMode {
  if (fromSpec !== 'auto' || fromEnvironment === undefined) return fromSpec;
  return fromEnvironment === 'true' || fromEnvironment === 'auto' ? fromEnvironment : 'false';
}
