import type { Clock, TimerHandle } from '../../../src/runtime/clock.js';
import { ApiError, type Lease } from '../../../src/runtime/kube.js';
import {
  formatMicroTime,
  LeaderElector,
  parseMicroTime,
  type LeaseStore,
} from '../../../src/runtime/leader.js';
import { deferred, FakeClock, flush } from './fakes.js';

/** One Lease in memory with resourceVersion checks, and per-candidate fault injection. */
class FakeLeaseServer {
  lease: Lease | undefined;
  private version = 0;
  readonly failing = new Set<string>();
  readonly hanging = new Set<string>();
  beforeUpdate: ((identity: string) => void) | undefined;

  storeFor(identity: string): LeaseStore {
    const guard = async (signal?: AbortSignal) => {
      if (this.failing.has(identity)) throw new Error('connection refused');
      if (this.hanging.has(identity)) {
        await new Promise<void>((_resolve, reject) =>
          signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true }),
        );
      }
    };
    return {
      getLease: async (_ns, _name, signal) => {
        await guard(signal);
        return this.lease ? structuredClone(this.lease) : undefined;
      },
      createLease: async (lease, signal) => {
        await guard(signal);
        if (this.lease) throw new ApiError(409, 'AlreadyExists', 'leases "meshrev" already exists');
        this.lease = this.stamp(lease);
        return structuredClone(this.lease);
      },
      updateLease: async (lease, signal) => {
        await guard(signal);
        this.beforeUpdate?.(identity);
        if (lease.metadata?.resourceVersion !== this.lease?.metadata?.resourceVersion) {
          throw new ApiError(409, 'Conflict', 'the object has been modified');
        }
        this.lease = this.stamp(lease);
        return structuredClone(this.lease);
      },
    };
  }

  /** Another writer changes the record (e.g. the old leader renewing late). */
  touch(): void {
    if (!this.lease) return;
    this.lease = this.stamp({ ...this.lease, spec: { ...this.lease.spec, renewTime: 'changed' } });
  }

  private stamp(lease: Lease): Lease {
    this.version += 1;
    return {
      ...structuredClone(lease),
      metadata: { ...lease.metadata, resourceVersion: String(this.version) },
    };
  }

  holder(): string {
    return this.lease?.spec?.holderIdentity ?? '';
  }

  /** Another candidate writes itself in as holder (one that wrongly believed the lease expired). */
  takeOver(identity: string): void {
    if (!this.lease) return;
    this.lease = this.stamp({ ...this.lease, spec: { ...this.lease.spec, holderIdentity: identity } });
  }
}

/** One candidate's view of the shared clock whose timers can freeze, like an event loop stalled by GC or a VM pause. */
class StallingClock implements Clock {
  private stalledUntil = 0;

  constructor(private readonly clock: FakeClock) {}

  now(): number {
    return this.clock.now();
  }

  /** Timers due before `at` fire at `at` instead. */
  stallUntil(at: number): void {
    this.stalledUntil = at;
  }

  setTimer(callback: () => void, ms: number): TimerHandle {
    let handle: TimerHandle;
    const fire = () => {
      const frozen = this.stalledUntil - this.clock.now();
      if (frozen > 0) handle = this.clock.setTimer(fire, frozen);
      else callback();
    };
    handle = this.clock.setTimer(fire, ms);
    return { cancel: () => handle.cancel() };
  }
}

interface CandidateOptions {
  releaseOnCancel?: boolean;
  clock?: Clock;
  /** Runs after the started@ log entry; by default the leading work ends at once. */
  onStartedLeading?: (signal: AbortSignal) => void | Promise<void>;
}

interface Candidate {
  identity: string;
  elector: LeaderElector;
  abort: AbortController;
  running: Promise<void>;
  log: string[];
  leadingSignal?: AbortSignal;
}

function candidate(
  server: FakeLeaseServer,
  clock: FakeClock,
  identity: string,
  options: CandidateOptions = {},
): Candidate {
  const log: string[] = [];
  const abort = new AbortController();
  const c: Partial<Candidate> = { identity, abort, log };
  const elector = new LeaderElector({
    store: server.storeFor(identity),
    namespace: 'meshrev-system',
    name: 'meshrev',
    identity,
    clock: options.clock ?? clock,
    random: () => 0,
    releaseOnCancel: options.releaseOnCancel ?? true,
    onStartedLeading: (signal) => {
      c.leadingSignal = signal;
      log.push(`started@${clock.now() - start}`);
      return options.onStartedLeading?.(signal);
    },
    onStoppedLeading: () => log.push(`stopped@${clock.now() - start}`),
    onLeadingChange: (leading) => log.push(`leading=${leading}`),
  });
  const start = clock.now();
  c.elector = elector;
  c.running = elector.run(abort.signal);
  return c as Candidate;
}

describe('LeaderElector', () => {
  let clock: FakeClock;
  let server: FakeLeaseServer;
  let candidates: Candidate[];
  beforeEach(() => {
    clock = new FakeClock();
    server = new FakeLeaseServer();
    candidates = [];
  });
  afterEach(async () => {
    for (const c of candidates) c.abort.abort();
    await clock.advance(1);
    await Promise.all(candidates.map((c) => c.running));
  });
  const join = (identity: string, options?: CandidateOptions) => {
    const c = candidate(server, clock, identity, options);
    candidates.push(c);
    return c;
  };

  it('creates the lease and leads when nobody holds it, writing MicroTime with six fractional digits', async () => {
    const a = join('a');
    await flush();
    expect(a.elector.isLeader()).toBe(true);
    expect(a.log).toEqual(['leading=true', 'started@0']);
    expect(server.lease?.spec).toMatchObject({
      holderIdentity: 'a',
      leaseDurationSeconds: 15,
      leaseTransitions: 0,
    });
    expect(server.lease?.spec?.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it('keeps a second candidate waiting while the leader renews every retry period', async () => {
    const a = join('a');
    await flush();
    const b = join('b');
    const renewTimes = new Set<string>();
    for (let i = 0; i < 30; i += 1) {
      await clock.advance(1_000);
      renewTimes.add(server.lease?.spec?.renewTime ?? '');
    }
    expect(a.elector.isLeader()).toBe(true);
    expect(b.elector.isLeader()).toBe(false);
    expect(b.elector.getLeader()).toBe('a');
    expect(renewTimes.size).toBeGreaterThanOrEqual(14);
  });

  it('takes over only after the lease duration has passed on its own clock since the record last changed', async () => {
    const a = join('a', { releaseOnCancel: false });
    await flush();
    const b = join('b');
    await flush();
    a.abort.abort();
    await a.running;
    // b saw the record at t=0 and it never changes again, so it may take over from t=15 s on.
    await clock.advance(14_000);
    expect(b.elector.isLeader()).toBe(false);
    await clock.advance(2_000);
    expect(b.elector.isLeader()).toBe(true);
    expect(b.log).toEqual(['leading=true', 'started@16000']);
    expect(server.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('stops leading at once when it cannot renew within the renew deadline of its last renewal', async () => {
    const a = join('a');
    await flush();
    server.failing.add('a');
    // The last renewal started at t=0, so leadership ends at t=10 s.
    await clock.advance(9_999);
    expect(a.elector.isLeader()).toBe(true);
    await clock.advance(1);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.leadingSignal?.aborted).toBe(true);
    expect(a.log).toEqual(['leading=true', 'started@0', 'leading=false', 'stopped@10000']);
    await a.running;
  });

  it('gives up a renewal that hangs when the renew deadline passes', async () => {
    const a = join('a');
    await flush();
    await clock.advance(2_000);
    server.hanging.add('a');
    await clock.advance(2_000);
    expect(a.elector.isLeader()).toBe(true);
    await clock.advance(10_000);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.log.at(-1)).toBe('stopped@12000');
  });

  it('wakes from a stall longer than the renew deadline as a follower, without renewing first', async () => {
    const stalling = new StallingClock(clock);
    const a = join('a', { clock: stalling });
    await flush();
    await clock.advance(2_000);
    const renewTime = server.lease?.spec?.renewTime;
    stalling.stallUntil(clock.now() + 12_000);
    await clock.advance(11_999);
    expect(a.elector.isLeader()).toBe(true); // frozen: it cannot know yet
    await clock.advance(1);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.leadingSignal?.aborted).toBe(true);
    expect(a.log.at(-1)).toBe('stopped@14000');
    expect(server.lease?.spec?.renewTime).toBe(renewTime);
  });

  it('stops leading as soon as a renewal finds another holder', async () => {
    const a = join('a');
    await flush();
    await clock.advance(2_000);
    server.takeOver('b');
    await clock.advance(2_000);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.leadingSignal?.aborted).toBe(true);
    expect(a.log.at(-1)).toBe('stopped@4000');
    expect(server.holder()).toBe('b');
  });

  it('does not lead on after a stall during which another candidate took the lease', async () => {
    const stalling = new StallingClock(clock);
    const a = join('a', { clock: stalling });
    await flush();
    const b = join('b');
    await clock.advance(30_000);
    stalling.stallUntil(clock.now() + 20_000);
    // b last saw the record change at t=30 s and takes over at its first retry from t=45 s on.
    await clock.advance(16_000);
    expect(b.elector.isLeader()).toBe(true);
    expect(b.log).toEqual(['leading=true', 'started@46000']);
    await clock.advance(4_000);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.log.at(-1)).toBe('stopped@50000');
    expect(server.holder()).toBe('b');
  });

  it('gives up leadership and releases the lease when onStartedLeading fails', async () => {
    const a = join('a', {
      onStartedLeading: () => Promise.reject(new Error('caches did not sync')),
    });
    await flush();
    expect(a.elector.isLeader()).toBe(false);
    expect(a.leadingSignal?.aborted).toBe(true);
    expect(a.log).toEqual(['leading=true', 'started@0', 'leading=false', 'stopped@0']);
    expect(server.lease?.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    await a.running;
    const b = join('b');
    await flush();
    expect(b.elector.isLeader()).toBe(true);
  });

  it('releases the lease on stop only once the leading work has stopped', async () => {
    const workStopped = deferred();
    const a = join('a', { onStartedLeading: () => workStopped.promise });
    await flush();
    await clock.advance(3_000);
    a.abort.abort();
    await flush();
    expect(a.elector.isLeader()).toBe(false);
    expect(a.leadingSignal?.aborted).toBe(true);
    expect(server.holder()).toBe('a');
    workStopped.resolve();
    await a.running;
    expect(server.lease?.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    expect(a.log.at(-1)).toBe('stopped@3000');
  });

  it('releases the lease at the renew deadline of its last renewal when the leading work does not stop', async () => {
    const a = join('a', { onStartedLeading: () => new Promise<void>(() => undefined) });
    await flush();
    await clock.advance(3_000);
    a.abort.abort();
    // The last renewal started at t=2 s: the release waits until t=12 s at most.
    await clock.advance(8_999);
    expect(server.holder()).toBe('a');
    await clock.advance(1);
    expect(server.lease?.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    await a.running;
    expect(a.log.at(-1)).toBe('stopped@12000');
  });

  it('releases the lease on stop so a waiting candidate takes over at its next retry', async () => {
    const a = join('a');
    await flush();
    const b = join('b');
    await clock.advance(3_000);
    a.abort.abort();
    await a.running;
    expect(server.lease?.spec).toMatchObject({ holderIdentity: '', leaseDurationSeconds: 1 });
    expect(a.log).toEqual(['leading=true', 'started@0', 'leading=false', 'stopped@3000']);
    await clock.advance(2_000);
    expect(b.elector.isLeader()).toBe(true);
    expect(server.lease?.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });

  it('loses a takeover race with a conflict and waits a full lease duration again', async () => {
    const a = join('a', { releaseOnCancel: false });
    await flush();
    const b = join('b');
    await flush();
    a.abort.abort();
    await a.running;
    let raced = false;
    server.beforeUpdate = (identity) => {
      if (identity === 'b' && !raced) {
        raced = true;
        server.touch();
      }
    };
    await clock.advance(16_000);
    expect(raced).toBe(true);
    expect(b.elector.isLeader()).toBe(false);
    // The touched record was first seen at t=18 s; the next takeover is allowed from t=33 s.
    await clock.advance(16_000);
    expect(b.elector.isLeader()).toBe(false);
    await clock.advance(2_000);
    expect(b.elector.isLeader()).toBe(true);
  });

  it('rejects timing settings that cannot work', () => {
    const store = new FakeLeaseServer().storeFor('x');
    const base = { store, namespace: 'n', name: 'l', identity: 'x', onStartedLeading: () => {} };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(
      /leaseDuration/,
    );
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(
      /renewDeadline/,
    );
  });
});

describe('MicroTime', () => {
  it('formats with exactly six fractional digits and parses back to the millisecond', () => {
    const ms = Date.UTC(2025, 5, 30, 12, 34, 56, 789);
    expect(formatMicroTime(ms)).toBe('2025-06-30T12:34:56.789000Z');
    expect(parseMicroTime('2025-06-30T12:34:56.789123Z')).toBe(ms);
    expect(parseMicroTime(undefined)).toBeUndefined();
  });
});
