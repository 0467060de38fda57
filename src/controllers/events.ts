// Kubernetes Events on meshrev's custom resources, so `kubectl describe cpr <rev>` tells the story.
// Identical events (same object, reason and message) within a window are written once: a failing
// reconcile that retries with backoff must not flood etcd, and a steady state writes none at all.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';

import type { KubeClient } from '../runtime/kube.js';
import type { KubeObject } from '../runtime/types.js';

export type EventType = 'Normal' | 'Warning';

export interface EventRecorder {
  record(object: KubeObject, type: EventType, reason: string, message: string): void;
}

export interface KubeEventRecorderOptions {
  client: KubeClient;
  component: string;
  instance: string;
  logger: Logger;
  dedupeWindowMs?: number;
  now?: () => number;
}

export class KubeEventRecorder implements EventRecorder {
  private readonly recent = new Map<string, number>();
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(private readonly options: KubeEventRecorderOptions) {
    this.windowMs = options.dedupeWindowMs ?? 10 * 60_000;
    this.now = options.now ?? Date.now;
  }

  record(object: KubeObject, type: EventType, reason: string, message: string): void {
    const meta = object.metadata ?? {};
    const key = `${object.kind}/${meta.namespace ?? ''}/${meta.name}/${meta.uid}/${reason}/${message}`;
    const now = this.now();
    const last = this.recent.get(key);
    if (last !== undefined && now - last < this.windowMs) return;
    this.recent.set(key, now);
    if (this.recent.size > 5000) this.prune(now);

    const timestamp = new Date(now).toISOString().replace(/\.\d{3}Z$/, 'Z');
    // Events about cluster-scoped objects live in `default`, as the API server requires (like Node events).
    const namespace = meta.namespace ?? 'default';
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: {
        name: `${meta.name ?? 'object'}.${now.toString(16)}${randomBytes(2).toString('hex')}`,
        namespace,
      },
      involvedObject: {
        apiVersion: object.apiVersion,
        kind: object.kind,
        name: meta.name,
        namespace: meta.namespace,
        uid: meta.uid,
        resourceVersion: meta.resourceVersion,
      },
      type,
      reason,
      message: message.length > 1000 ? `${message.slice(0, 997)}...` : message,
      source: { component: this.options.component, host: this.options.instance },
      reportingComponent: this.options.component,
      reportingInstance: this.options.instance,
      firstTimestamp: timestamp,
      lastTimestamp: timestamp,
      count: 1,
    };
    // Events are best effort: a failure to record one must never fail a reconcile.
    this.options.client.create(event).catch((err: unknown) => {
      this.options.logger.debug({ err, reason }, 'could not record event');
    });
  }

  private prune(now: number): void {
    for (const [key, at] of this.recent) if (now - at >= this.windowMs) this.recent.delete(key);
  }
}

/** Collects events in memory, for unit tests. */
export class MemoryEventRecorder implements EventRecorder {
  readonly events: { kind?: string; name?: string; type: EventType; reason: string; message: string }[] = [];
  record(object: KubeObject, type: EventType, reason: string, message: string): void {
    this.events.push({ kind: object.kind, name: object.metadata?.name, type, reason, message });
  }
}
