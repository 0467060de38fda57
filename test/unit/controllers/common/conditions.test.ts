import { jsonEqual, setCondition, setConditions } from '../../../../src/controllers/common/conditions.js';
import type { Condition } from '../../../../src/crds/condition.js';

const T0 = '2026-01-01T00:00:00Z';
const T1 = new Date('2026-01-01T00:05:00.123Z');

const ready = (status: Condition['status'], reason = 'IstiodAvailable') => ({
  type: 'Ready',
  status,
  reason,
  message: `istiod ${status}`,
});

describe('setCondition', () => {
  it('appends a new condition stamped with the time and generation', () => {
    expect(setCondition(undefined, ready('True'), T1, 4)).toEqual([
      { ...ready('True'), observedGeneration: 4, lastTransitionTime: '2026-01-01T00:05:00Z' },
    ]);
  });

  it('keeps lastTransitionTime when only the reason, message or generation changes', () => {
    const previous = setCondition(undefined, ready('False', 'IstiodNotAvailable'), T0, 1);
    const next = setCondition(previous, { ...ready('False', 'IstiodNotFound'), message: 'gone' }, T1, 2);
    expect(next).toEqual([
      {
        type: 'Ready',
        status: 'False',
        reason: 'IstiodNotFound',
        message: 'gone',
        observedGeneration: 2,
        lastTransitionTime: T0,
      },
    ]);
  });

  it('moves lastTransitionTime when the status changes', () => {
    const previous = setCondition(undefined, ready('False'), T0, 1);
    expect(setCondition(previous, ready('True'), T1, 1)[0]?.lastTransitionTime).toBe('2026-01-01T00:05:00Z');
  });

  it('replaces a condition in place and leaves the others and the input untouched', () => {
    const previous = setConditions(
      undefined,
      [{ type: 'Reconciled', status: 'True', reason: 'Reconciled', message: 'ok' }, ready('False')],
      T0,
    );
    const frozen = JSON.stringify(previous);
    const next = setCondition(previous, ready('True'), T1);
    expect(next.map((condition) => [condition.type, condition.status])).toEqual([
      ['Reconciled', 'True'],
      ['Ready', 'True'],
    ]);
    expect(JSON.stringify(previous)).toBe(frozen);
  });
});

describe('jsonEqual', () => {
  it.each([
    [{ a: 1, b: [1, { c: 2 }] }, { b: [1, { c: 2 }], a: 1 }, true],
    [{ a: 1, b: undefined }, { a: 1 }, true],
    [{ a: 1 }, { a: 2 }, false],
    [[1, 2], [2, 1], false],
    [{ a: 1 }, { a: 1, b: 0 }, false],
    [null, {}, false],
  ])('compares %j and %j as %s', (left, right, expected) => {
    expect(jsonEqual(left, right)).toBe(expected);
  });
});
