import { describe, expect, it } from '@jest/globals';

import { retryingAction } from '../../../src/runtime/retry.js';

/** A sleep that records its delays and returns at once (or rejects if its signal already aborted). */
function fakeSleep(): { delays: number[]; sleep: (ms: number, signal: AbortSignal) => Promise<void> } {
  const delays: number[] = [];
  return {
    delays,
    sleep: (ms, signal) => {
      delays.push(ms);
      return signal.aborted ? Promise.reject(new Error('aborted')) : Promise.resolve();
    },
  };
}

/** An action that fails its first `failures` calls. */
function flaky(failures: number): { calls: () => number; action: () => Promise<void> } {
  let calls = 0;
  return {
    calls: () => calls,
    action: async () => {
      calls += 1;
      if (calls <= failures) throw new Error(`failure ${calls}`);
    },
  };
}

describe('retryingAction', () => {
  it('runs once when asked once and it succeeds', async () => {
    const { calls, action } = flaky(0);
    const errors: unknown[] = [];
    const retrying = retryingAction(action, { onError: (e) => errors.push(e), sleep: fakeSleep().sleep });

    retrying.request(new AbortController().signal);
    await retrying.idle();

    expect(calls()).toBe(1);
    expect(errors).toEqual([]);
  });

  it('retries a failing run with exponential backoff, capped, until it succeeds', async () => {
    const { calls, action } = flaky(5);
    const { delays, sleep } = fakeSleep();
    const reported: number[] = [];
    const retrying = retryingAction(action, {
      onError: (_e, retryInMs) => reported.push(retryInMs),
      initialDelayMs: 100,
      maxDelayMs: 500,
      sleep,
    });

    retrying.request(new AbortController().signal);
    await retrying.idle();

    expect(calls()).toBe(6);
    expect(delays).toEqual([100, 200, 400, 500, 500]);
    expect(reported).toEqual(delays);
  });

  it('stops retrying once the signal aborts', async () => {
    const controller = new AbortController();
    let calls = 0;
    const retrying = retryingAction(
      async () => {
        calls += 1;
        if (calls === 2) controller.abort();
        throw new Error('always fails');
      },
      { onError: () => undefined, sleep: fakeSleep().sleep },
    );

    retrying.request(controller.signal);
    await retrying.idle();

    expect(calls).toBe(2);
  });

  it('never runs for an ask whose signal has already aborted', async () => {
    const { calls, action } = flaky(0);
    const retrying = retryingAction(action, { onError: () => undefined, sleep: fakeSleep().sleep });

    retrying.request(AbortSignal.abort());
    await retrying.idle();

    expect(calls()).toBe(0);
  });

  it('coalesces asks made during a run into exactly one more run, never two at once', async () => {
    let running = 0;
    let overlapped = false;
    let calls = 0;
    let release: (() => void) | undefined;
    const retrying = retryingAction(
      async () => {
        calls += 1;
        running += 1;
        overlapped ||= running > 1;
        if (calls === 1) await new Promise<void>((resolve) => (release = resolve));
        running -= 1;
      },
      { onError: () => undefined, sleep: fakeSleep().sleep },
    );
    const signal = new AbortController().signal;

    retrying.request(signal);
    retrying.request(signal);
    retrying.request(signal);
    retrying.request(signal);
    release?.();
    await retrying.idle();

    expect(calls).toBe(2);
    expect(overlapped).toBe(false);
  });

  it('a new ask after an aborted one runs under the new signal (a new leadership term)', async () => {
    const lost = new AbortController();
    let calls = 0;
    const retrying = retryingAction(
      async () => {
        calls += 1;
        if (calls === 1) {
          lost.abort();
          throw new Error('leadership lost mid-write');
        }
      },
      { onError: () => undefined, sleep: fakeSleep().sleep },
    );

    retrying.request(lost.signal);
    await retrying.idle();
    retrying.request(new AbortController().signal);
    await retrying.idle();

    expect(calls).toBe(2);
  });

  it('hands the action the signal of the ask it runs for, so a withdrawn ask cancels its write', async () => {
    const seen: AbortSignal[] = [];
    const retrying = retryingAction(
      async (signal) => {
        seen.push(signal);
      },
      { onError: () => undefined, sleep: fakeSleep().sleep },
    );
    const ask = new AbortController();

    retrying.request(ask.signal);
    await retrying.idle();

    expect(seen).toEqual([ask.signal]);
  });
});
