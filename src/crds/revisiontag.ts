// The RevisionTag API: a cluster-scoped alias (the object's name) for one ControlPlaneRevision.
import { z } from 'zod';

import { ConditionListSchema } from './condition.js';
import {
  API_GROUP_VERSION,
  DNS1123_LABEL_PATTERN,
  MAX_REVISION_NAME_LENGTH,
  REVISION_TAG_KIND,
} from './constants.js';
import { normaliseDates, OwnerMetadataSchema } from './controlplanerevision.js';
import { tagNameProblems } from './names.js';

export const RevisionTagSpecSchema = z
  .object({
    revision: z
      .string()
      .min(1)
      .max(MAX_REVISION_NAME_LENGTH)
      .regex(new RegExp(DNS1123_LABEL_PATTERN))
      .describe('Name of the ControlPlaneRevision this tag points at'),
  })
  .describe('Desired state of a revision tag');

export const RevisionTagStatusSchema = z
  .object({
    observedGeneration: z.int().min(0).optional().describe('The .metadata.generation last reconciled'),
    revision: z.string().optional().describe('The revision the tag currently routes to'),
    webhookConfiguration: z.string().optional().describe('Name of the MutatingWebhookConfiguration'),
    conditions: ConditionListSchema.optional(),
  })
  .describe('Observed state of the tag');

export type RevisionTagSpec = z.output<typeof RevisionTagSpecSchema>;
export type RevisionTagStatus = z.output<typeof RevisionTagStatusSchema>;

export const RevisionTagSchema = z
  .object({
    apiVersion: z.literal(API_GROUP_VERSION),
    kind: z.literal(REVISION_TAG_KIND),
    metadata: OwnerMetadataSchema,
    spec: RevisionTagSpecSchema,
    status: RevisionTagStatusSchema.optional(),
  })
  .superRefine((tag, context) => {
    for (const message of tagNameProblems(tag.metadata.name)) context.addIssue({ code: 'custom', message });
    if (tag.metadata.name === tag.spec.revision) {
      context.addIssue({
        code: 'custom',
        message: 'a tag cannot have the name of the revision it points at',
      });
    }
  });

export type RevisionTag = z.output<typeof RevisionTagSchema>;

export function parseRevisionTag(
  object: unknown,
): { ok: true; value: RevisionTag } | { ok: false; error: string } {
  const result = RevisionTagSchema.safeParse(normaliseDates(object));
  if (result.success) return { ok: true, value: result.data };
  return { ok: false, error: z.prettifyError(result.error) };
}
