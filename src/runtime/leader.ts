// Leader election on a coordination.k8s.io/v1 Lease with client-go's algorithm. A lease is considered held
// while (local time at which we last saw its record change) + (the record's leaseDurationSeconds) lies in
// the future; clocks of different replicas are never compared. Takeovers and renewals are updates guarded by
// resourceVersion, so of two racing candidates one gets a 409 and loses.
import type { Logger } from 'pino';

import { sleep, jitter, systemClock, type Clock } from './clock.js';
import type { Lease, LeaseSpec } from './kube.js';

export interface LeaseStore {
  getLease(namespace: string, name: string, signal?: AbortSignal): Promise<Lease | undefined>;
  createLease(lease: Lease, signal?: AbortSignal): Promise<Lease>;
  /** Must fail (e.g. 409) when metadata.resourceVersion is stale. */
  updateLease(lease: Lease, signal?: AbortSignal): Promise<Lease>;
}

export interface LeaderCallbacks {
  /** Runs while leading; `signal` aborts the moment leadership is lost or released. */
  onStartedLeading(signal: AbortSignal): void | Promise<void>;
  onStoppedLeading?(): void;
  onNewLeader?(identity: string): void;
}

export interface LeaderElectionOptions extends LeaderCallbacks {
  store: LeaseStore;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Give the lease up on stop so a successor need not wait for it to expire. */
  releaseOnCancel?: boolean;
  clock?: Clock;
  random?: () => number;
  logger?: Logger;
  /** Receives leadership changes, e.g. Metrics.setLeader for the meshrev_leader gauge. */
  onLeadingChange?(leading: boolean): void;
}

const jitterFactor = 1.2;

/** Kubernetes MicroTime: RFC 3339 with exactly six fractional digits (toISOString's three get a 400). */
export function formatMicroTime(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 23)}000Z`;
}

export function parseMicroTime(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? undefined : parsed;
}

/** How one acquire-or-renew attempt ended. */
type Attempt = 'ours' | 'heldByOther' | 'failed';

function recordFingerprint(spec: LeaseSpec | undefined): string {
  return JSON.stringify([
    spec?.holderIdentity ?? '',
    spec?.leaseDurationSeconds ?? 0,
    spec?.acquireTime ?? '',
    spec?.renewTime ?? '',
    spec?.leaseTransitions ?? 0,
  ]);
}

export class LeaderElector {
  private readonly options: LeaderElectionOptions;
  private readonly clock: Clock;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private readonly random: () => number;
  private observed: Lease | undefined;
  private observedFingerprint = '';
  private observedAt = 0;
  private leading = false;
  private reportedLeader = '';
  /** Our clock when the last successful acquire or renew attempt started: the renew deadline counts from it. */
  private renewedAt = 0;

  constructor(options: LeaderElectionOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    this.random = options.random ?? Math.random;
    if (this.leaseDurationMs <= this.renewDeadlineMs) {
      throw new Error('leaseDuration must be greater than renewDeadline');
    }
    if (this.renewDeadlineMs <= jitterFactor * this.retryPeriodMs) {
      throw new Error('renewDeadline must be greater than retryPeriod*1.2');
    }
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Identity in the last observed record ('' when nobody holds it). */
  getLeader(): string {
    return this.observed?.spec?.holderIdentity ?? '';
  }

  /**
   * Campaigns until leadership is acquired, leads until it is lost or `signal` aborts, then returns. A
   * process that lost leadership should exit rather than call run() again with stale in-memory state.
   */
  async run(signal: AbortSignal): Promise<void> {
    const acquired = await this.acquire(signal);
    if (!acquired) return;
    const leading = new AbortController();
    this.setLeading(true);
    let startFailed = false;
    // A replica whose controllers failed to start must not sit on the lease doing nothing while the others
    // wait: it ends leadership like a lost lease (run() returns, so the operator exits and restarts).
    const work = Promise.resolve()
      .then(() => this.options.onStartedLeading(leading.signal))
      .catch((err: unknown) => {
        this.options.logger?.error({ err }, 'onStartedLeading failed');
        if (leading.signal.aborted) return; // leadership was ending anyway
        startFailed = true;
        leading.abort();
      });
    try {
      await this.renewLoop(AbortSignal.any([signal, leading.signal]));
    } finally {
      leading.abort();
      this.setLeading(false);
      if ((signal.aborted || startFailed) && this.options.releaseOnCancel !== false) {
        // Like controller-runtime: stop the leading work first, release afterwards, so a successor cannot
        // start while our controllers are still writing.
        await this.settle(work);
        await this.release();
      }
      this.options.onStoppedLeading?.();
    }
  }

  /**
   * Waits for the leading work to settle, but no longer than the renew deadline of our last renewal. Until
   * then we may act as leader anyway (the renew loop's own rule); we no longer renew, so waiting longer would
   * only let the lease run out under still-running work, with successors free to take it, while a stuck
   * callback would delay the release and the shutdown for nothing.
   */
  private async settle(work: Promise<void>): Promise<void> {
    const left = this.renewDeadlineLeft();
    if (left <= 0) return;
    const timeout = new AbortController();
    const settled = await Promise.race([
      work.then(() => true),
      sleep(this.clock, left, timeout.signal).then(() => false),
    ]);
    timeout.abort();
    if (!settled) {
      this.options.logger?.warn(
        { lease: this.leaseName() },
        'leading work still running at the renew deadline',
      );
    }
  }

  private setLeading(leading: boolean): void {
    this.leading = leading;
    try {
      this.options.onLeadingChange?.(leading);
    } catch {
      // a metrics hook must not break the election loop
    }
  }

  private async acquire(signal: AbortSignal): Promise<boolean> {
    this.options.logger?.info({ lease: this.leaseName() }, 'attempting to acquire leader lease');
    while (!signal.aborted) {
      const startedAt = this.clock.now();
      if ((await this.tryAcquireOrRenew(signal)) === 'ours') {
        this.renewedAt = startedAt;
        this.options.logger?.info({ lease: this.leaseName() }, 'acquired leader lease');
        return true;
      }
      await sleep(this.clock, jitter(this.retryPeriodMs, jitterFactor, this.random), signal);
    }
    return false;
  }

  /**
   * Renews every retryPeriod. Leadership ends at once when renewDeadline has passed since the start of the last
   * successful renewal (checked after every sleep, so a stalled event loop wakes up as a follower rather than
   * acting first), or when another candidate holds the lease.
   */
  private async renewLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const left = this.renewDeadlineLeft();
      if (left <= 0) {
        this.options.logger?.error({ lease: this.leaseName() }, 'failed to renew lease before the deadline');
        return;
      }
      const startedAt = this.clock.now();
      const attempt = await this.withDeadline(left, signal, (attemptSignal) =>
        this.tryAcquireOrRenew(attemptSignal),
      );
      if (signal.aborted) return;
      if (attempt === 'heldByOther') {
        this.options.logger?.error(
          { lease: this.leaseName(), holder: this.getLeader() },
          'lease taken over by another candidate',
        );
        return;
      }
      if (attempt === 'ours') this.renewedAt = startedAt;
      // After a failure, wake at the deadline at the latest so leadership ends on time.
      const wait = Math.min(this.retryPeriodMs, this.renewDeadlineLeft());
      if (wait > 0) await sleep(this.clock, wait, signal);
    }
  }

  private renewDeadlineLeft(): number {
    return this.renewedAt + this.renewDeadlineMs - this.clock.now();
  }

  /** Runs `attempt`, treating it as failed if it has not finished within `ms` on our clock. */
  private withDeadline(
    ms: number,
    signal: AbortSignal,
    attempt: (signal: AbortSignal) => Promise<Attempt>,
  ): Promise<Attempt> {
    const attemptAbort = new AbortController();
    const attemptSignal = AbortSignal.any([signal, attemptAbort.signal]);
    return new Promise<Attempt>((resolve) => {
      const timer = this.clock.setTimer(() => {
        attemptAbort.abort(new Error('lease renewal deadline exceeded'));
        resolve('failed');
      }, ms);
      attempt(attemptSignal).then(
        (result) => {
          timer.cancel();
          resolve(result === 'ours' && attemptSignal.aborted ? 'failed' : result);
        },
        () => {
          timer.cancel();
          resolve('failed');
        },
      );
    });
  }

  private leaseName(): string {
    return `${this.options.namespace}/${this.options.name}`;
  }

  private observe(lease: Lease): void {
    const fingerprint = recordFingerprint(lease.spec);
    if (fingerprint !== this.observedFingerprint) {
      this.observedFingerprint = fingerprint;
      this.observedAt = this.clock.now();
    }
    this.observed = lease;
    const holder = lease.spec?.holderIdentity ?? '';
    if (holder && holder !== this.reportedLeader) {
      this.reportedLeader = holder;
      try {
        this.options.onNewLeader?.(holder);
      } catch {
        // a callback must not break the election loop
      }
    }
  }

  private async tryAcquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const { store, namespace, name, identity } = this.options;
    const now = this.clock.now();
    const ours: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.round(this.leaseDurationMs / 1000),
      acquireTime: formatMicroTime(now),
      renewTime: formatMicroTime(now),
      leaseTransitions: 0,
    };
    try {
      const existing = await store.getLease(namespace, name, signal);
      if (!existing) {
        const created = await store.createLease(
          { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: ours },
          signal,
        );
        this.observe(created);
        return 'ours';
      }
      this.observe(existing);
      const current = existing.spec ?? {};
      const holder = current.holderIdentity ?? '';
      const durationMs = (current.leaseDurationSeconds ?? 0) * 1000;
      const heldByOther = holder !== '' && holder !== identity;
      if (heldByOther && this.observedAt + durationMs > now) return 'heldByOther';

      if (holder === identity) {
        ours.acquireTime = current.acquireTime ?? ours.acquireTime;
        ours.leaseTransitions = current.leaseTransitions ?? 0;
      } else {
        ours.leaseTransitions = (current.leaseTransitions ?? 0) + 1;
      }
      const updated = await store.updateLease(
        { ...existing, metadata: { ...existing.metadata, name, namespace }, spec: { ...current, ...ours } },
        signal,
      );
      this.observe(updated);
      return 'ours';
    } catch (err) {
      if (!signal.aborted) this.options.logger?.debug({ err }, 'lease acquire/renew failed');
      return 'failed';
    }
  }

  /** Clears holderIdentity with a one-second duration so another candidate can take over immediately. */
  private async release(): Promise<void> {
    const observed = this.observed;
    if (!observed || observed.spec?.holderIdentity !== this.options.identity) return;
    const now = formatMicroTime(this.clock.now());
    try {
      const released = await this.options.store.updateLease({
        ...observed,
        spec: {
          ...observed.spec,
          holderIdentity: '',
          leaseDurationSeconds: 1,
          acquireTime: now,
          renewTime: now,
          leaseTransitions: observed.spec?.leaseTransitions ?? 0,
        },
      });
      this.observe(released);
      this.options.logger?.info({ lease: this.leaseName() }, 'released leader lease');
    } catch (err) {
      this.options.logger?.warn({ err }, 'failed to release leader lease');
    }
  }
}
