// Turns zod's JSON Schema output into a Kubernetes structural schema (the openAPIV3Schema dialect of
// CustomResourceDefinitions), and checks the rules Kubernetes enforces on such schemas.
import { z } from 'zod';

export type JsonSchema = { [key: string]: unknown };

const INT_OR_STRING = 'x-kubernetes-int-or-string';
const PRESERVE_UNKNOWN = 'x-kubernetes-preserve-unknown-fields';

/** Keywords copied as they are; anything not listed here or handled below is rejected loudly. */
const PASSTHROUGH_KEYWORDS = new Set([
  'type',
  'description',
  'format',
  'default',
  'nullable',
  'enum',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'multipleOf',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'uniqueItems',
  'minProperties',
  'maxProperties',
]);

/** Keywords zod may emit that carry no meaning for Kubernetes. */
const DROPPED_KEYWORDS = new Set(['$schema', 'propertyNames', 'title', 'examples', 'readOnly', 'deprecated']);

function isObject(value: unknown): value is JsonSchema {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function isEmptySchema(value: unknown): boolean {
  return value === true || (isObject(value) && Object.keys(value).length === 0);
}

/** Converts a zod schema to a structural schema. */
export function zodToStructuralSchema(schema: z.ZodType): JsonSchema {
  const jsonSchema = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    unrepresentable: 'throw',
    reused: 'inline',
    cycles: 'throw',
  }) as JsonSchema;
  return toStructuralSchema(jsonSchema);
}

export function toStructuralSchema(schema: JsonSchema, path = '$'): JsonSchema {
  if (isEmptySchema(schema)) return { [PRESERVE_UNKNOWN]: true };
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (DROPPED_KEYWORDS.has(key)) continue;
    if (key.startsWith('x-kubernetes-')) {
      out[key] = value;
    } else if (PASSTHROUGH_KEYWORDS.has(key)) {
      out[key] = value;
    } else if (key === 'const') {
      out['enum'] = [value];
    } else if (key === 'required') {
      if (Array.isArray(value) && value.length > 0) out[key] = value;
    } else if (key === 'properties') {
      if (!isObject(value)) throw new Error(`${path}.properties is not an object`);
      out[key] = Object.fromEntries(
        Object.entries(value).map(([name, inner]) => [
          name,
          toStructuralSchema(isObject(inner) ? inner : {}, `${path}.${name}`),
        ]),
      );
    } else if (key === 'items') {
      if (!isObject(value)) throw new Error(`${path}.items must be a single schema`);
      out[key] = toStructuralSchema(value, `${path}[]`);
    } else if (key === 'additionalProperties') {
      if (value === false) continue;
      if (isEmptySchema(value)) {
        out[PRESERVE_UNKNOWN] = true;
        continue;
      }
      if (!isObject(value)) throw new Error(`${path}.additionalProperties must be a schema`);
      out[key] = toStructuralSchema(value, `${path}.*`);
    } else if (key === 'anyOf' || key === 'oneOf') {
      Object.assign(out, convertUnion(schema, value, path));
    } else {
      throw new Error(`${path}: JSON Schema keyword '${key}' has no Kubernetes structural equivalent`);
    }
  }
  dropUnsafeIntegerBounds(out);
  if (isObject(out['properties']) && Object.keys(out['properties']).length === 0 && out[PRESERVE_UNKNOWN]) {
    delete out['properties'];
  }
  if (out['properties'] !== undefined && out['additionalProperties'] !== undefined) {
    throw new Error(`${path}: Kubernetes forbids properties and additionalProperties on the same object`);
  }
  return out;
}

/** zod's `z.int()` bounds are JavaScript's safe-integer range: noise in a CRD. */
function dropUnsafeIntegerBounds(out: JsonSchema): void {
  if (out['minimum'] === Number.MIN_SAFE_INTEGER) delete out['minimum'];
  if (out['maximum'] === Number.MAX_SAFE_INTEGER) delete out['maximum'];
}

function convertUnion(parent: JsonSchema, members: unknown, path: string): JsonSchema {
  if (!Array.isArray(members)) throw new Error(`${path}: union members must be a list`);
  if (parent[INT_OR_STRING] === true) {
    return { anyOf: [{ type: 'integer' }, { type: 'string' }] };
  }
  const types = new Set(members.map((member) => (isObject(member) ? member['type'] : undefined)));
  const allEnums = members.every((member) => isObject(member) && Array.isArray(member['enum']));
  const [onlyType] = [...types];
  if (types.size === 1 && typeof onlyType === 'string' && allEnums) {
    const values = members.flatMap((member) =>
      isObject(member) && Array.isArray(member['enum']) ? member['enum'] : [],
    );
    return { type: onlyType, enum: values };
  }
  throw new Error(
    `${path}: unions are only supported as int-or-string or as alternatives of literals of one type; ` +
      'model exclusive fields as optional properties plus a CEL rule',
  );
}

/**
 * Returns every violation of Kubernetes' structural-schema rules found in `schema` (empty when valid).
 * `isRoot` enables the rules that only apply to a CRD's top-level schema.
 */
export function structuralSchemaProblems(schema: JsonSchema, path = '$', isRoot = path === '$'): string[] {
  const problems: string[] = [];
  const intOrString = schema[INT_OR_STRING] === true;
  const preserveUnknown = schema[PRESERVE_UNKNOWN] === true;

  for (const forbidden of [
    '$schema',
    '$ref',
    '$defs',
    'definitions',
    'propertyNames',
    'const',
    'oneOf',
    'allOf',
    'not',
  ]) {
    if (forbidden in schema) problems.push(`${path}: '${forbidden}' is not allowed`);
  }
  if (schema['type'] === undefined && !intOrString && !preserveUnknown) {
    problems.push(`${path}: has no type`);
  }
  if (intOrString && schema['type'] !== undefined)
    problems.push(`${path}: int-or-string must not set a type`);
  if ('anyOf' in schema) {
    const expected = JSON.stringify([{ type: 'integer' }, { type: 'string' }]);
    if (!intOrString || JSON.stringify(schema['anyOf']) !== expected) {
      problems.push(`${path}: anyOf is only allowed as the int-or-string pattern`);
    }
  }
  if ('additionalProperties' in schema) {
    const additional = schema['additionalProperties'];
    if (typeof additional === 'boolean') problems.push(`${path}: additionalProperties must be a schema`);
    if ('properties' in schema) problems.push(`${path}: properties and additionalProperties are exclusive`);
    if (isObject(additional)) problems.push(...structuralSchemaProblems(additional, `${path}.*`, false));
  }
  if (schema['type'] === 'array') {
    const items = schema['items'];
    if (!isObject(items)) problems.push(`${path}: array without a single items schema`);
    else {
      problems.push(...structuralSchemaProblems(items, `${path}[]`, false));
      if (schema['x-kubernetes-list-type'] === 'map') {
        const keys = schema['x-kubernetes-list-map-keys'];
        const required = Array.isArray(items['required']) ? items['required'] : [];
        if (!Array.isArray(keys) || keys.length === 0) problems.push(`${path}: map list without map keys`);
        else if (!keys.every((key) => required.includes(key))) {
          problems.push(`${path}: every list-map key must be required`);
        }
      }
    }
  }
  if (
    schema['type'] === 'object' &&
    !preserveUnknown &&
    !('properties' in schema) &&
    !('additionalProperties' in schema)
  ) {
    problems.push(`${path}: object without properties, additionalProperties or preserve-unknown-fields`);
  }
  const properties = schema['properties'];
  if (properties !== undefined) {
    if (!isObject(properties)) problems.push(`${path}: properties is not an object`);
    else {
      const required = Array.isArray(schema['required']) ? schema['required'] : [];
      for (const name of required) {
        if (typeof name !== 'string' || !(name in properties))
          problems.push(`${path}: required '${String(name)}' is not a property`);
      }
      for (const [name, inner] of Object.entries(properties)) {
        if (!isObject(inner)) {
          problems.push(`${path}.${name}: not a schema`);
          continue;
        }
        if (isRoot && name === 'metadata') {
          if (JSON.stringify(inner) !== JSON.stringify({ type: 'object' })) {
            problems.push(`${path}.metadata: only 'type: object' is allowed at the root`);
          }
          continue;
        }
        problems.push(...structuralSchemaProblems(inner, `${path}.${name}`, false));
      }
    }
  }
  return problems;
}
