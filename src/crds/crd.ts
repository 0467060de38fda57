// CustomResourceDefinitions generated from the zod schemas; `renderCrdYaml()` is what deploy/crds holds.
import { stringify } from 'yaml';
import type { z } from 'zod';

import {
  API_GROUP,
  API_VERSION,
  CONTROL_PLANE_REVISION_KIND,
  DNS1123_LABEL_PATTERN,
  MAX_REVISION_NAME_LENGTH,
  MAX_TAG_NAME_LENGTH,
  REVISION_TAG_KIND,
} from './constants.js';
import { ControlPlaneRevisionSpecSchema, ControlPlaneRevisionStatusSchema } from './controlplanerevision.js';
import { RevisionTagSpecSchema, RevisionTagStatusSchema } from './revisiontag.js';
import { type JsonSchema, zodToStructuralSchema } from './structural.js';

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames: string[];
      categories: string[];
    };
    scope: 'Cluster';
    versions: Array<{
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: JsonSchema };
    }>;
  };
}

interface CelRule {
  rule: string;
  message: string;
}

const conditionColumn = (name: string, type: string, description: string): PrinterColumn => ({
  name,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
  description,
});

const AGE_COLUMN: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/** CEL rules on `self.metadata.name`, the only way to constrain a custom resource's name. */
function nameRules(kind: string, maxLength: number): CelRule[] {
  return [
    {
      rule: `self.metadata.name.size() <= ${maxLength}`,
      message: `a ${kind} name must be at most ${maxLength} characters so every object derived from it has a valid name`,
    },
    {
      rule: `self.metadata.name.matches('${DNS1123_LABEL_PATTERN}')`,
      message: `a ${kind} name must be a DNS-1123 label (lower-case letters, digits and '-', starting and ending with an alphanumeric)`,
    },
  ];
}

function rootSchema(description: string, spec: z.ZodType, status: z.ZodType, rules: CelRule[]): JsonSchema {
  return {
    type: 'object',
    description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion of this representation of the object' },
      kind: { type: 'string', description: 'Kind of the object' },
      metadata: { type: 'object' },
      spec: zodToStructuralSchema(spec),
      status: zodToStructuralSchema(status),
    },
    'x-kubernetes-validations': rules,
  };
}

function crd(
  kind: string,
  plural: string,
  shortNames: string[],
  columns: PrinterColumn[],
  openAPIV3Schema: JsonSchema,
): CustomResourceDefinition {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${plural}.${API_GROUP}`,
      // The labels deploy/kustomization.yaml gives every object, so the Helm chart's crds/ (the same files,
      // which Helm cannot template) installs them identically.
      labels: {
        'app.kubernetes.io/name': 'meshrev',
        'app.kubernetes.io/part-of': 'meshrev',
        'app.kubernetes.io/managed-by': 'meshrev',
      },
    },
    spec: {
      group: API_GROUP,
      names: {
        kind,
        listKind: `${kind}List`,
        plural,
        singular: kind.toLowerCase(),
        shortNames,
        categories: ['meshrev'],
      },
      scope: 'Cluster',
      versions: [
        {
          name: API_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: columns,
          schema: { openAPIV3Schema },
        },
      ],
    },
  };
}

export function controlPlaneRevisionCrd(): CustomResourceDefinition {
  const schema = rootSchema(
    'An Istio control-plane revision: istiod, its configuration and its sidecar-injection webhook. ' +
      'The object name is the revision name.',
    ControlPlaneRevisionSpecSchema,
    ControlPlaneRevisionStatusSchema,
    nameRules(CONTROL_PLANE_REVISION_KIND, MAX_REVISION_NAME_LENGTH),
  );
  return crd(
    CONTROL_PLANE_REVISION_KIND,
    'controlplanerevisions',
    ['cpr'],
    [
      { name: 'Version', type: 'string', jsonPath: '.status.version', description: 'Resolved Istio version' },
      conditionColumn('Ready', 'Ready', 'Whether istiod is available'),
      conditionColumn('Reconciled', 'Reconciled', 'Whether the last reconciliation succeeded'),
      conditionColumn('In Use', 'InUse', 'Whether namespaces, pods or tags use this revision'),
      AGE_COLUMN,
      { name: 'Channel', type: 'string', jsonPath: '.spec.channel', priority: 1 },
      { name: 'Namespace', type: 'string', jsonPath: '.spec.namespace', priority: 1 },
    ],
    schema,
  );
}

export function revisionTagCrd(): CustomResourceDefinition {
  const schema = rootSchema(
    'A revision tag: a stable name (the object name) that namespaces and pods select with istio.io/rev, ' +
      'routed to the ControlPlaneRevision in spec.revision. The tag named default also serves istio-injection=enabled.',
    RevisionTagSpecSchema,
    RevisionTagStatusSchema,
    [
      ...nameRules(REVISION_TAG_KIND, MAX_TAG_NAME_LENGTH),
      {
        rule: 'self.metadata.name != self.spec.revision',
        message: 'a tag cannot have the name of the revision it points at',
      },
    ],
  );
  return crd(
    REVISION_TAG_KIND,
    'revisiontags',
    ['rtag'],
    [
      { name: 'Revision', type: 'string', jsonPath: '.spec.revision', description: 'Target revision' },
      conditionColumn('In Use', 'InUse', 'Whether namespaces or pods use this tag'),
      AGE_COLUMN,
    ],
    schema,
  );
}

export const CRD_FILE_HEADER =
  '# Generated from the zod schemas in src/crds by hack/gen-crds.ts. DO NOT EDIT.\n';

// YAML 1.1 quoting so Go's YAML 1.1 readers (kubectl) keep values like OFF or y as strings.
export function crdToYaml(definition: CustomResourceDefinition): string {
  return (
    CRD_FILE_HEADER + stringify(definition, { version: '1.1', lineWidth: 0, aliasDuplicateObjects: false })
  );
}

/** File name (under deploy/crds) → YAML content, for every CRD meshrev serves. */
export function renderCrdYaml(): Record<string, string> {
  return Object.fromEntries(
    [controlPlaneRevisionCrd(), revisionTagCrd()].map((definition) => [
      `${API_GROUP}_${definition.spec.names.plural}.yaml`,
      crdToYaml(definition),
    ]),
  );
}
