import { z } from 'zod';

/** The metav1.Condition shape, with the API server's own limits. */
export const ConditionSchema = z
  .object({
    type: z
      .string()
      .max(316)
      .regex(
        /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/,
      )
      .describe('Type of condition in CamelCase, e.g. Ready'),
    status: z.enum(['True', 'False', 'Unknown']).describe('Status of the condition'),
    observedGeneration: z
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation the condition was set for'),
    lastTransitionTime: z
      .string()
      .meta({ format: 'date-time' })
      .describe('When the condition last changed from one status to another'),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .regex(/^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/)
      .describe('CamelCase reason for the last transition'),
    message: z.string().max(32768).describe('Human readable details of the last transition'),
  })
  .describe('A status condition in the metav1.Condition shape');

export type Condition = z.infer<typeof ConditionSchema>;

/** List metadata that lets server-side apply merge conditions by type rather than replace the list. */
export const CONDITION_LIST_META = {
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
} as const;

export const ConditionListSchema = z
  .array(ConditionSchema)
  .max(16)
  .meta(CONDITION_LIST_META)
  .describe('Current state of the object as standard conditions');
