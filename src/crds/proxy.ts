// PLACEHOLDER owned by the injector-engine work: the zod schemas of ControlPlaneRevision
// `spec.proxy` and `spec.injection`. The injector engine's settings are derived from these.
import { z } from 'zod';

export const ProxySpecSchema = z
  .object({
    image: z.string().optional().describe('Proxy image name or full reference (default proxyv2)'),
  })
  .describe('Sidecar proxy settings used by the injector');

export const InjectionSpecSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Whether the webhook configuration is rendered'),
  })
  .describe('Sidecar injection webhook settings');

export type ProxySpec = z.infer<typeof ProxySpecSchema>;
export type InjectionSpec = z.infer<typeof InjectionSpecSchema>;
