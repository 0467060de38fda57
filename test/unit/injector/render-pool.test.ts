// The render thread pool's own behaviour, with scripted threads that speak its protocol: settings travel once per
// thread, a thread that exits loses only its queued jobs (their callers render them) and is started again, full or
// missing threads decline work, jobs go to threads only while the main thread is busy, and close() stops everything. What a real thread computes is in render-job.test.ts.
import pino from 'pino';

import type { InjectorSettings } from '../../../src/injector/engine/settings.js';
import type { RenderJob } from '../../../src/injector/render-job.js';
import { RenderJobTimedOut, RenderPool, RenderThreadLost } from '../../../src/injector/render-pool.js';
import { waitFor } from '../runtime/fakes.js';

// Answers by the job's namespace: `crash` ends the thread, `hold` never answers, `spin` blocks the thread for good
// (an engine stuck on a pod), `busy` works 30 ms and answers, `fail` reports a failure, `slow` reports 150 ms spent
// on it, and any
// other is answered with what the thread knew: the settings' revision, whether they came with this job, what the
// job retired.
const SCRIPTED_THREAD = `
const { parentPort } = require('node:worker_threads');
const settings = new Map();
parentPort.postMessage({ ready: true });
parentPort.on('message', (m) => {
  for (const id of m.retire ?? []) settings.delete(id);
  if (m.settings) settings.set(m.settingsId, m.settings);
  const ns = m.job.namespace;
  if (ns === 'crash') process.exit(3);
  if (ns === 'hold') return;
  if (ns === 'spin') for (;;);
  if (ns === 'busy') { const end = Date.now() + 30; while (Date.now() < end); }
  if (ns === 'fail') return parentPort.postMessage({ id: m.id, failed: 'engine broke' });
  const known = settings.get(m.settingsId);
  const retired = m.retire ? ' retired ' + m.retire.join(',') : '';
  parentPort.postMessage({
    id: m.id,
    verdict: { kind: 'skipped', reason: (known ? known.revision : 'none') + (m.settings ? ' sent' : ' kept') + retired },
    ...(ns === 'slow' ? { renderMs: 150 } : {}),
  });
});
`;

const settingsOf = (revision: string) => ({ revision }) as unknown as InjectorSettings;
const job = (namespace: string): RenderJob => ({ input: { reviewText: '{}' }, namespace, pathParams: {} });
const logger = pino({ level: 'silent' });

const pools: RenderPool[] = [];
/** A pool of scripted threads, started and (unless `ready` is false) ready for jobs. */
async function pool(
  options: Partial<ConstructorParameters<typeof RenderPool>[0]> = {},
  { started = true, ready = true } = {},
): Promise<RenderPool> {
  const created = new RenderPool({
    threads: 1,
    logger,
    entry: { evalScript: SCRIPTED_THREAD },
    restartDelayMs: { initial: 5, max: 20 },
    offload: 'always',
    ...options,
  });
  pools.push(created);
  if (!started) return created;
  created.prestart();
  if (ready) await waitFor(() => created.stats().live === created.stats().threads, 'the threads to be ready');
  return created;
}
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

function rendered(promise: ReturnType<RenderPool['render']>): Promise<unknown> {
  if (promise === undefined) throw new Error('the pool declined the job');
  return promise;
}

describe('RenderPool', () => {
  test("sends a revision's settings with its first job only, and again with a retire note when they change", async () => {
    const p = await pool();
    const first = settingsOf('asm-1');
    expect(await rendered(p.render('asm-1', first, job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-1 sent',
    });
    expect(await rendered(p.render('asm-1', first, job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-1 kept',
    });
    // Another revision's settings are its own; they do not retire the first revision's.
    expect(await rendered(p.render('asm-2', settingsOf('asm-2'), job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-2 sent',
    });
    // New settings for asm-1 (a new spec generation): sent, and the old ones retired on the thread.
    expect(await rendered(p.render('asm-1', settingsOf('asm-1'), job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-1 sent retired 1',
    });
    expect(p.stats()).toMatchObject({ threads: 1, live: 1, queued: 0, rendered: 4, declined: 0 });
  });

  test('a thread that exits loses only the jobs it held, is started again, and is sent settings anew', async () => {
    const p = await pool();
    const settings = settingsOf('asm-1');
    await rendered(p.render('asm-1', settings, job('a')));
    const held = rendered(p.render('asm-1', settings, job('hold')));
    const crash = rendered(p.render('asm-1', settings, job('crash')));
    await expect(held).rejects.toBeInstanceOf(RenderThreadLost);
    await expect(crash).rejects.toThrow('render thread 0 exited before it answered');
    expect(p.stats()).toMatchObject({ lost: 2, restarts: 1 });

    await waitFor(() => p.stats().live === 1, 'the thread to be started again');
    expect(await rendered(p.render('asm-1', settings, job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-1 sent',
    });
  });

  test('the watchdog refuses a job the thread is stuck on, hands back the jobs behind it and restarts the thread', async () => {
    const p = await pool({ watchdog: { jobTimeoutMs: 100, intervalMs: 20 } });
    const settings = settingsOf('asm-1');
    await rendered(p.render('asm-1', settings, job('a')));
    const stuck = rendered(p.render('asm-1', settings, job('spin')));
    const behind = rendered(p.render('asm-1', settings, job('a')));
    await expect(stuck).rejects.toBeInstanceOf(RenderJobTimedOut);
    await expect(stuck).rejects.toThrow(/render thread 0 held this pod for \d+ ms without an answer/);
    // The job queued behind the stuck one is not refused: its caller renders it.
    await expect(behind).rejects.toBeInstanceOf(RenderThreadLost);
    expect(p.stats()).toMatchObject({ timedOut: 1, lost: 1, restarts: 1 });

    await waitFor(() => p.stats().live === 1, 'the thread to be started again');
    expect(await rendered(p.render('asm-1', settings, job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-1 sent',
    });
    expect(p.stats()).toMatchObject({ timedOut: 1, queued: 0 });
  });

  test("a job's own timeout shortens the pool's, never lengthens it, and runs while the job waits behind another", async () => {
    // The pool's timeout is far beyond the test's: only the job's own can end the first wait.
    const lenient = await pool({ watchdog: { jobTimeoutMs: 600_000, intervalMs: 20 } });
    const stuck = rendered(lenient.render('asm-1', settingsOf('asm-1'), job('spin'), 100));
    await expect(stuck).rejects.toBeInstanceOf(RenderJobTimedOut);
    expect(lenient.stats()).toMatchObject({ timedOut: 1 });

    // A job with a short timeout queued behind a stuck one with a long timeout does not wait out the long one: the
    // stuck job is refused, and the short one goes back to its caller to be rendered there.
    await waitFor(() => lenient.stats().live === 1, 'the thread to be started again');
    const stuckLong = rendered(lenient.render('asm-1', settingsOf('asm-1'), job('spin')));
    const behindShort = rendered(lenient.render('asm-1', settingsOf('asm-1'), job('a'), 100));
    await expect(stuckLong).rejects.toBeInstanceOf(RenderJobTimedOut);
    await expect(behindShort).rejects.toBeInstanceOf(RenderThreadLost);
    expect(lenient.stats()).toMatchObject({ timedOut: 2, lost: 1 });

    const strict = await pool({ watchdog: { jobTimeoutMs: 100, intervalMs: 20 } });
    const capped = rendered(strict.render('asm-1', settingsOf('asm-1'), job('spin'), 600_000));
    await expect(capped).rejects.toBeInstanceOf(RenderJobTimedOut);
    expect(strict.stats()).toMatchObject({ timedOut: 1 });
  });

  test('a job that waited past its timeout in a moving queue goes back to its caller; no pod is refused', async () => {
    const p = await pool({ watchdog: { jobTimeoutMs: 200, intervalMs: 20 } });
    const settings = settingsOf('asm-1');
    // 30 jobs of 30 ms each: the last ones wait far longer than 200 ms, while the thread never dwells on one.
    const outcomes = await Promise.all(
      Array.from({ length: 30 }, () =>
        rendered(p.render('asm-1', settings, job('busy'))).then(
          () => 'rendered',
          (error: unknown) => (error as Error).constructor.name,
        ),
      ),
    );
    expect(outcomes).not.toContain('RenderJobTimedOut');
    expect(outcomes).toContain('RenderThreadLost');
    expect(outcomes[0]).toBe('rendered');
    expect(p.stats()).toMatchObject({ timedOut: 0, restarts: 0 });
  });

  test('a check that runs late, after the main thread was busy, waits for the answers sent meanwhile', async () => {
    const p = await pool({ watchdog: { jobTimeoutMs: 100, intervalMs: 20 } });
    const settings = settingsOf('asm-1');
    const answered = [1, 2, 3].map(() => rendered(p.render('asm-1', settings, job('a'))));
    // The thread answers at once, but this thread only reads the answers after a turn three timeouts long, run
    // where the event loop goes to its timers, the watchdog's, before it delivers messages.
    await new Promise<void>((resolve) =>
      setImmediate(() => {
        const end = Date.now() + 300;
        while (Date.now() < end);
        resolve();
      }),
    );
    await expect(Promise.all(answered)).resolves.toHaveLength(3);
    expect(p.stats()).toMatchObject({ timedOut: 0, lost: 0, restarts: 0 });
  });

  test('the watchdog leaves a thread alone while its jobs are answered in time', async () => {
    const p = await pool({ watchdog: { jobTimeoutMs: 100, intervalMs: 20 } });
    const settings = settingsOf('asm-1');
    for (let i = 0; i < 20; i++) await rendered(p.render('asm-1', settings, job('a')));
    expect(p.stats()).toMatchObject({ rendered: 20, timedOut: 0, restarts: 0, live: 1 });
  });

  test('while its only thread is down the pool declines jobs, so callers render them', async () => {
    const p = await pool({ restartDelayMs: { initial: 60_000, max: 60_000 } });
    await expect(rendered(p.render('asm-1', settingsOf('asm-1'), job('crash')))).rejects.toBeInstanceOf(
      RenderThreadLost,
    );
    expect(p.render('asm-1', settingsOf('asm-1'), job('a'))).toBeUndefined();
    expect(p.stats()).toMatchObject({ live: 0, declined: 1 });
  });

  test('a job that cannot be sent to a thread is rejected at once and leaves nothing waiting', async () => {
    const p = await pool();
    const unclonable = { revision: 'asm-1', hook: () => undefined } as unknown as InjectorSettings;
    await expect(rendered(p.render('asm-1', unclonable, job('a')))).rejects.toThrow();
    expect(p.stats()).toMatchObject({ queued: 0 });
    // The settings were not delivered, so the next job carries them again.
    expect(await rendered(p.render('asm-1', settingsOf('asm-1'), job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-1 sent',
    });
  });

  test("a thread's reported failure rejects that job only", async () => {
    const p = await pool();
    await expect(rendered(p.render('asm-1', settingsOf('asm-1'), job('fail')))).rejects.toThrow(
      'engine broke',
    );
    expect(await rendered(p.render('asm-1', settingsOf('asm-1'), job('a')))).toMatchObject({
      kind: 'skipped',
    });
    expect(p.stats()).toMatchObject({ failed: 1, rendered: 1, lost: 0, restarts: 0 });
  });

  test('spreads jobs over the least busy thread and declines once every thread holds its limit', async () => {
    const p = await pool({ threads: 2, maxQueuedPerThread: 2 });
    const settings = settingsOf('asm-1');
    const held = [1, 2, 3, 4].map(() => p.render('asm-1', settings, job('hold')));
    expect(held.every((promise) => promise !== undefined)).toBe(true);
    expect(p.stats()).toMatchObject({ threads: 2, live: 2, queued: 4 });
    expect(p.render('asm-1', settings, job('a'))).toBeUndefined();
    expect(p.stats().declined).toBe(1);
    // Closing loses the held jobs; their callers would render them.
    const settled = Promise.allSettled(held.map((promise) => rendered(promise)));
    await p.close();
    const outcomes = await settled;
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
    expect(p.stats()).toMatchObject({ live: 0, lost: 4, restarts: 0 });
    expect(p.render('asm-1', settings, job('a'))).toBeUndefined();
  });

  test('offloads only while the main thread is busy: from 90% event-loop use until it falls under 75%', async () => {
    const loads = [0.3, 0.95, 0.75, 0.65, 0.89];
    let clock = 0;
    const p = await pool({
      offload: 'when-busy',
      now: () => clock,
      mainThreadLoad: () => loads.shift() ?? 0,
    });
    const settings = settingsOf('asm-1');
    const offered = async (): Promise<'thread' | 'main'> => {
      const onThread = p.render('asm-1', settings, job('a'));
      if (onThread === undefined) return 'main';
      await onThread;
      return 'thread';
    };
    expect(await offered()).toBe('main'); // no sample yet: the main thread counts as idle
    clock = 250;
    expect([await offered(), await offered()]).toEqual(['main', 'main']); // 0.3, sampled once per window
    clock = 500;
    expect(await offered()).toBe('thread'); // 0.95: busy
    clock = 750;
    expect(await offered()).toBe('thread'); // 0.75: still busy (not yet under 75%)
    clock = 875;
    expect(await offered()).toBe('thread'); // same window, no new sample
    clock = 1000;
    expect(await offered()).toBe('main'); // 0.65: idle again
    clock = 1250;
    expect(await offered()).toBe('main'); // 0.89: not yet busy
    expect(p.stats()).toMatchObject({ kept: 5, declined: 0, rendered: 3 });
  });

  test("the time threads spent rendering counts as the main thread's load, since it would have carried it", async () => {
    const loads = [0.95, 0.3, 0.3, 0.95];
    let clock = 0;
    const p = await pool({
      offload: 'when-busy',
      now: () => clock,
      mainThreadLoad: () => loads.shift() ?? 0,
    });
    const settings = settingsOf('asm-1');
    clock = 250;
    expect(await rendered(p.render('asm-1', settings, job('slow')))).toBeDefined(); // 0.95: busy; 150 ms on the thread
    clock = 500;
    // 0.3 alone would be idle, but with the thread's 150 ms in a 250 ms window the main thread would be at 0.9.
    expect(await rendered(p.render('asm-1', settings, job('a')))).toBeDefined();
    clock = 750;
    // Nothing rendered off the main thread in this window: 0.3 is the whole load, so the main thread renders again.
    expect(p.render('asm-1', settings, job('a'))).toBeUndefined();
    clock = 1000;
    // A job still held by a thread does not keep offloading on by itself: only the load decides.
    const held = p.render('asm-1', settings, job('hold')); // 0.95: busy again
    expect(held).toBeDefined();
    clock = 1250;
    expect(p.render('asm-1', settings, job('a'))).toBeUndefined(); // 0 and nothing answered: idle
    expect(p.stats()).toMatchObject({ rendered: 2, kept: 2, queued: 1 });
    const settled = held?.catch(() => undefined);
    await p.close();
    await settled;
  });

  test('with no threads configured every job is declined', async () => {
    const p = await pool({ threads: 0 });
    expect(p.render('asm-1', settingsOf('asm-1'), job('a'))).toBeUndefined();
    expect(p.stats()).toMatchObject({ threads: 0, live: 0, declined: 1 });
  });

  test('a thread that cannot start is retried with a growing delay, and jobs are declined meanwhile', async () => {
    const p = await pool({ entry: { evalScript: 'throw new Error("no engine here")' } }, { ready: false });
    await waitFor(() => p.stats().restarts >= 3, 'three failed starts', 5_000);
    expect(p.stats().live).toBe(0);
    await p.close();
    expect(p.render('asm-1', settingsOf('asm-1'), job('a'))).toBeUndefined();
  });
  test('starts no thread until a job is offered to one; the caller renders until the thread is ready', async () => {
    const loads = [0.3, 0.95];
    let clock = 0;
    const p = await pool(
      { offload: 'when-busy', now: () => clock, mainThreadLoad: () => loads.shift() ?? 0.95 },
      { started: false },
    );
    const settings = settingsOf('asm-1');
    clock = 250;
    // The main thread has time for it (0.3): kept, and no thread is started for it.
    expect(p.render('asm-1', settings, job('a'))).toBeUndefined();
    expect(p.stats()).toMatchObject({ threads: 1, live: 0, starting: 0, kept: 1 });
    clock = 500;
    // Busy (0.95): the thread starts, but this job does not wait for it to load.
    expect(p.render('asm-1', settings, job('a'))).toBeUndefined();
    expect(p.stats()).toMatchObject({ live: 0, starting: 1, declined: 1 });
    await waitFor(() => p.stats().live === 1, 'the thread to be ready');
    expect(await rendered(p.render('asm-1', settings, job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-1 sent',
    });
    expect(p.stats()).toMatchObject({ live: 1, starting: 0, rendered: 1, kept: 1, declined: 1 });
  });

  test('offloading every miss (always), the pool starts its threads at once', async () => {
    const p = await pool({ offload: 'always', threads: 2 }, { started: false });
    expect(p.stats()).toMatchObject({ threads: 2, live: 0, starting: 2 });
    await waitFor(() => p.stats().live === 2, 'both threads to be ready');
  });

  test('a restarted thread takes jobs again only once it says it is ready', async () => {
    // A thread that takes 300 ms to load, so that the pool is seen waiting for it.
    const slowToLoad = SCRIPTED_THREAD.replace(
      'parentPort.postMessage({ ready: true });',
      'setTimeout(() => parentPort.postMessage({ ready: true }), 300);',
    );
    expect(slowToLoad).not.toBe(SCRIPTED_THREAD);
    const p = await pool({ entry: { evalScript: slowToLoad } });
    const settings = settingsOf('asm-1');
    await expect(rendered(p.render('asm-1', settings, job('crash')))).rejects.toBeInstanceOf(
      RenderThreadLost,
    );
    await waitFor(() => p.stats().starting === 1, 'the thread to be started again');
    expect(p.render('asm-1', settings, job('a'))).toBeUndefined();
    await waitFor(() => p.stats().live === 1, 'the restarted thread to be ready');
    expect(await rendered(p.render('asm-1', settings, job('a')))).toEqual({
      kind: 'skipped',
      reason: 'asm-1 sent',
    });
  });
});
