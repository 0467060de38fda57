import { ApiError, type Lease } from '../../../src/runtime/kube.js';
import {
  formatMicroTime,
  LeaderElector,
  parseMicroTime,
  type LeaseStore,
} from '../../../src/runtime/leader.js';
import { FakeClock, flush } from './fakes.js';

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
  options: { releaseOnCancel?: boolean } = {},
): Candidate {
  const log: string[] = [];
  const abort = new AbortController();
  const c: Partial<Candidate> = { identity, abort, log };
  const elector = new LeaderElector({
    store: server.storeFor(identity),
    namespace: 'meshrev-system',
    name: 'meshrev',
    identity,
    clock,
    random: () => 0,
    releaseOnCancel: options.releaseOnCancel ?? true,
    onStartedLeading: (signal) => {
      c.leadingSignal = signal;
      log.push(`started@${clock.now() - start}`);
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
  const join = (identity: string, options?: { releaseOnCancel?: boolean }) => {
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

  it('stops leading at once when it cannot renew before the renew deadline', async () => {
    const a = join('a');
    await flush();
    server.failing.add('a');
    await clock.advance(9_999);
    expect(a.elector.isLeader()).toBe(true);
    await clock.advance(2_001);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.leadingSignal?.aborted).toBe(true);
    expect(a.log).toEqual(['leading=true', 'started@0', 'leading=false', 'stopped@12000']);
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
    expect(a.log.at(-1)).toBe('stopped@14000');
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
