// Which of a revision and a tag of the same name keeps the name: the older one, ties to the revision.
import { nameClaim, type Claimant } from '../../../src/controllers/claims.js';
import type { KubeObject } from '../../../src/runtime/types.js';

function objects(created: Record<string, string | undefined>): { get(key: string): KubeObject | undefined } {
  return {
    get: (key) =>
      key in created
        ? {
            metadata: {
              name: key,
              ...(created[key] === undefined ? {} : { creationTimestamp: created[key] }),
            },
          }
        : undefined,
  };
}

describe('nameClaim', () => {
  const cases: {
    name: string;
    revision?: string | null;
    tag?: string | null;
    expected: Claimant | undefined;
  }[] = [
    { name: 'neither exists: nobody claims the name', expected: undefined },
    { name: 'only a revision: the revision', revision: '2025-01-01T00:00:00Z', expected: 'revision' },
    { name: 'only a tag: the tag', tag: '2025-01-01T00:00:00Z', expected: 'tag' },
    {
      name: 'the older revision keeps the name',
      revision: '2025-01-01T00:00:00Z',
      tag: '2025-01-02T00:00:00Z',
      expected: 'revision',
    },
    {
      name: 'the older tag keeps the name',
      revision: '2025-01-02T00:00:00Z',
      tag: '2025-01-01T00:00:00Z',
      expected: 'tag',
    },
    {
      name: 'a tie goes to the revision',
      revision: '2025-01-01T00:00:00Z',
      tag: '2025-01-01T00:00:00Z',
      expected: 'revision',
    },
    {
      name: 'a revision without a timestamp loses to a tag with one',
      revision: null,
      tag: '2025-01-01T00:00:00Z',
      expected: 'tag',
    },
    {
      name: 'a tag without a timestamp loses to the revision',
      revision: '2025-01-01T00:00:00Z',
      tag: null,
      expected: 'revision',
    },
    { name: 'neither with a timestamp: the revision', revision: null, tag: null, expected: 'revision' },
  ];
  test.each(cases)('$name', ({ revision, tag, expected }) => {
    const revisions = objects(revision === undefined ? {} : { shared: revision ?? undefined });
    const tags = objects(tag === undefined ? {} : { shared: tag ?? undefined });
    expect(nameClaim('shared', revisions, tags)).toBe(expected);
  });
});
