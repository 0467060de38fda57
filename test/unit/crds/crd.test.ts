import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { parse } from 'yaml';
import { z } from 'zod';

import {
  controlPlaneRevisionCrd,
  type CustomResourceDefinition,
  renderCrdYaml,
  revisionTagCrd,
} from '../../../src/crds/crd.js';
import {
  structuralSchemaProblems,
  toStructuralSchema,
  zodToStructuralSchema,
} from '../../../src/crds/structural.js';

const CRD_DIRECTORY = join(process.cwd(), 'deploy', 'crds');

function celRules(schema: unknown): string[] {
  const rules: string[] = [];
  const visit = (node: unknown) => {
    if (node === null || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    const validations = record['x-kubernetes-validations'];
    if (Array.isArray(validations)) {
      for (const validation of validations) rules.push((validation as { rule: string }).rule);
    }
    for (const value of Object.values(record)) visit(value);
  };
  visit(schema);
  return rules;
}

function schemaOf(definition: CustomResourceDefinition) {
  const version = definition.spec.versions[0];
  if (version === undefined) throw new Error('no version');
  return version.schema.openAPIV3Schema;
}

describe('committed CRD manifests', () => {
  it.each(Object.entries(renderCrdYaml()))(
    'deploy/crds/%s matches what the zod schemas generate',
    (file, yaml) => {
      const committed = readFileSync(join(CRD_DIRECTORY, file), 'utf8');
      // On failure: build (npm run build) and run `node dist/hack/gen-crds.js` from the repository root.
      expect(committed).toBe(yaml);
    },
  );

  it('parse back to the generated CRD objects', () => {
    for (const definition of [controlPlaneRevisionCrd(), revisionTagCrd()]) {
      const file = `meshrev.dev_${definition.spec.names.plural}.yaml`;
      expect(parse(readFileSync(join(CRD_DIRECTORY, file), 'utf8'))).toEqual(definition);
    }
  });
});

describe('ControlPlaneRevision CRD', () => {
  const definition = controlPlaneRevisionCrd();
  const version = definition.spec.versions[0]!;

  it('is cluster-scoped v1alpha1 in meshrev.dev with short name cpr and a status subresource', () => {
    expect(definition.metadata.name).toBe('controlplanerevisions.meshrev.dev');
    expect(definition.spec.scope).toBe('Cluster');
    expect(definition.spec.names).toMatchObject({ kind: 'ControlPlaneRevision', shortNames: ['cpr'] });
    expect(version).toMatchObject({
      name: 'v1alpha1',
      served: true,
      storage: true,
      subresources: { status: {} },
    });
  });

  it('prints VERSION, READY, RECONCILED, IN USE and AGE, and CHANNEL and NAMESPACE only in wide output', () => {
    const columns = version.additionalPrinterColumns.map((column) => [
      column.name.toUpperCase(),
      column.jsonPath,
      column.priority ?? 0,
    ]);
    expect(columns).toEqual([
      ['VERSION', '.status.version', 0],
      ['READY', '.status.conditions[?(@.type=="Ready")].status', 0],
      ['RECONCILED', '.status.conditions[?(@.type=="Reconciled")].status', 0],
      ['IN USE', '.status.conditions[?(@.type=="InUse")].status', 0],
      ['AGE', '.metadata.creationTimestamp', 0],
      ['CHANNEL', '.spec.channel', 1],
      ['NAMESPACE', '.spec.namespace', 1],
    ]);
  });

  it('has a structural schema', () => {
    expect(structuralSchemaProblems(schemaOf(definition))).toEqual([]);
  });

  it('carries the CEL rules a schema cannot express', () => {
    expect(celRules(schemaOf(definition))).toEqual(
      expect.arrayContaining([
        'has(self.version) != has(self.channel)',
        'self == oldSelf',
        'self.minReplicas <= self.maxReplicas',
        '!(has(self.minAvailable) && has(self.maxUnavailable))',
        '!has(self.replicas) || !has(self.autoscaling) || !self.autoscaling.enabled',
        'self.metadata.name.size() <= 39',
        "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
      ]),
    );
  });

  it('puts the name rules on the root schema, where self.metadata.name is visible', () => {
    const root = schemaOf(definition)['x-kubernetes-validations'] as Array<{ rule: string }>;
    expect(root.map((validation) => validation.rule)).toEqual([
      'self.metadata.name.size() <= 39',
      "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
    ]);
  });

  it('keeps unknown fields of meshConfig and affinity but not of the typed spec', () => {
    const spec = (schemaOf(definition)['properties'] as Record<string, Record<string, unknown>>)['spec']!;
    const properties = spec['properties'] as Record<string, Record<string, unknown>>;
    expect(spec['x-kubernetes-preserve-unknown-fields']).toBeUndefined();
    expect(properties['meshConfig']!['x-kubernetes-preserve-unknown-fields']).toBe(true);
    const istiod = properties['istiod']!['properties'] as Record<string, Record<string, unknown>>;
    expect(istiod['affinity']!['x-kubernetes-preserve-unknown-fields']).toBe(true);
    expect(istiod['tolerations']!['x-kubernetes-preserve-unknown-fields']).toBeUndefined();
  });

  it('has no JSON Schema noise a Kubernetes schema does not use', () => {
    const text = JSON.stringify(schemaOf(definition));
    expect(text).not.toContain('$schema');
    expect(text).not.toContain('"additionalProperties":false');
    expect(text).not.toContain('9007199254740991');
  });

  it('keeps defaults and descriptions', () => {
    const spec = (schemaOf(definition)['properties'] as Record<string, Record<string, unknown>>)['spec']!;
    const properties = spec['properties'] as Record<string, Record<string, unknown>>;
    expect(properties['namespace']).toMatchObject({
      default: 'istio-system',
      description: expect.any(String),
    });
    expect(properties['hub']).toMatchObject({ default: 'docker.io/istio' });
  });

  it('merges conditions by type under server-side apply', () => {
    const status = (schemaOf(definition)['properties'] as Record<string, Record<string, unknown>>)['status']!;
    const conditions = (status['properties'] as Record<string, Record<string, unknown>>)['conditions']!;
    expect(conditions).toMatchObject({
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    });
  });
});

describe('RevisionTag CRD', () => {
  const definition = revisionTagCrd();
  const version = definition.spec.versions[0]!;

  it('is cluster-scoped with short name rtag and prints REVISION, IN USE and AGE', () => {
    expect(definition.metadata.name).toBe('revisiontags.meshrev.dev');
    expect(definition.spec.scope).toBe('Cluster');
    expect(definition.spec.names.shortNames).toEqual(['rtag']);
    expect(version.additionalPrinterColumns.map((column) => column.name.toUpperCase())).toEqual([
      'REVISION',
      'IN USE',
      'AGE',
    ]);
  });

  it('has a structural schema requiring spec.revision', () => {
    const schema = schemaOf(definition);
    expect(structuralSchemaProblems(schema)).toEqual([]);
    const spec = (schema['properties'] as Record<string, Record<string, unknown>>)['spec']!;
    expect(spec['required']).toEqual(['revision']);
  });

  it('rejects a tag named like its own target revision', () => {
    expect(celRules(schemaOf(definition))).toContain('self.metadata.name != self.spec.revision');
  });
});

describe('toStructuralSchema', () => {
  it('turns an empty schema into a field that keeps anything', () => {
    expect(toStructuralSchema({})).toEqual({ 'x-kubernetes-preserve-unknown-fields': true });
  });

  it('renders int-or-string as the one anyOf Kubernetes accepts', () => {
    const schema = zodToStructuralSchema(
      z.union([z.int(), z.string()]).meta({ 'x-kubernetes-int-or-string': true }),
    );
    expect(schema).toEqual({
      anyOf: [{ type: 'integer' }, { type: 'string' }],
      'x-kubernetes-int-or-string': true,
    });
  });

  it('merges unions of same-typed literals into one enum', () => {
    expect(zodToStructuralSchema(z.union([z.literal('a'), z.literal('b')]))).toEqual({
      type: 'string',
      enum: ['a', 'b'],
    });
  });

  it('refuses other unions instead of emitting a non-structural schema', () => {
    expect(() => zodToStructuralSchema(z.union([z.string(), z.object({ a: z.string() })]))).toThrow(/unions/);
  });

  it('refuses keywords it does not know', () => {
    expect(() => toStructuralSchema({ type: 'string', contentEncoding: 'base64' })).toThrow(
      /contentEncoding/,
    );
  });

  it('turns open objects with typed fields into typed fields that keep unknown ones', () => {
    expect(zodToStructuralSchema(z.looseObject({ a: z.string().optional() }))).toEqual({
      type: 'object',
      properties: { a: { type: 'string' } },
      'x-kubernetes-preserve-unknown-fields': true,
    });
  });

  it('keeps string maps as additionalProperties', () => {
    expect(zodToStructuralSchema(z.record(z.string(), z.string()))).toEqual({
      type: 'object',
      additionalProperties: { type: 'string' },
    });
  });
});

describe('structuralSchemaProblems', () => {
  it.each([
    ['a field without a type', { type: 'object', properties: { a: { description: 'x' } } }, /has no type/],
    ['a general anyOf', { anyOf: [{ type: 'string' }, { type: 'object' }] }, /anyOf/],
    [
      'properties next to additionalProperties',
      { type: 'object', properties: {}, additionalProperties: { type: 'string' } },
      /exclusive/,
    ],
    ['an array without items', { type: 'array' }, /items/],
    [
      'a map list whose key is optional',
      {
        type: 'array',
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
        items: { type: 'object', properties: { type: { type: 'string' } } },
      },
      /required/,
    ],
    ['a boolean additionalProperties', { type: 'object', additionalProperties: false }, /schema/],
  ])('reports %s', (_name, schema, problem) => {
    const problems = structuralSchemaProblems(schema as Record<string, unknown>, '$.x', false);
    expect(problems).toEqual(expect.arrayContaining([expect.stringMatching(problem)]));
  });
});
