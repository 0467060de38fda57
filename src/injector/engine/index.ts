// Public API of the pure sidecar injection engine. See inject.ts for the pipeline and settings.ts for what a
// revision must provide.
export {
  injectPod,
  detectNativeSidecars,
  deploymentMetaFromPod,
  buildPatch,
  proxyImageUrl,
} from './inject.js';
export type { InjectionRequest, InjectionOutcome } from './inject.js';
export { injectRequired, selectorMatches } from './policy.js';
export type { InjectDecision } from './policy.js';
export { validateAnnotations, ANNOTATION_VALIDATORS } from './validate.js';
export { defaultInjectorSettings, DEFAULT_IGNORED_NAMESPACES } from './settings.js';
export type {
  InjectorSettings,
  MeshSettings,
  ProxyConfig,
  NativeSidecarMode,
  InterceptionMode,
} from './settings.js';
export { ProxyConfigIndex, effectiveProxyConfig, proxyConfigResourceFrom } from './proxy-config-resources.js';
export type { ChosenLayers, ProxyConfigLayers, ProxyConfigResource } from './proxy-config-resources.js';
export { kubeInjectDocuments } from './kube-inject.js';
export type { KubeInjectOptions } from './kube-inject.js';
export { applyJsonPatch, escapePointerToken, unescapePointerToken, pointer } from './json-patch.js';
export { BUILT_IN_TEMPLATES } from './templates.js';
export type { InjectionTemplate, TemplateContext } from './templates.js';
export { canonicalQuantity } from './quantity.js';
export type { JsonPatchOp, Pod, Container, LabelSelector } from './types.js';
