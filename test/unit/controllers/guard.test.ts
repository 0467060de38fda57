import { guardObject, MISSING, type GuardedObjectInformer } from '../../../src/controllers/guard.js';
import type { InformerHandlers } from '../../../src/runtime/informer.js';
import type { KubeObject } from '../../../src/runtime/types.js';

type Webhook = KubeObject & { webhooks?: { failurePolicy?: string }[] };

const webhook = (failurePolicy: string, resourceVersion = '1'): Webhook => ({
  apiVersion: 'admissionregistration.k8s.io/v1',
  kind: 'ValidatingWebhookConfiguration',
  metadata: { name: 'meshrev-validation', resourceVersion },
  webhooks: [{ failurePolicy }],
});

/** An informer driven by hand: `sync` delivers the first list, then `add`/`update`/`remove` are watch events. */
class HandInformer implements GuardedObjectInformer<Webhook> {
  private readonly handlers: InformerHandlers<Webhook>[] = [];
  private readonly store = new Map<string, Webhook>();
  private synced = false;
  private readonly waiters: Array<(synced: boolean) => void> = [];
  started = false;
  stopped = false;

  addHandlers(handlers: InformerHandlers<Webhook>): () => void {
    this.handlers.push(handlers);
    return () => undefined;
  }
  start(): void {
    this.started = true;
  }
  stop(): Promise<void> {
    this.stopped = true;
    for (const resolve of this.waiters.splice(0)) resolve(false);
    return Promise.resolve();
  }
  waitForSync(): Promise<boolean> {
    if (this.synced) return Promise.resolve(true);
    return new Promise((resolve) => this.waiters.push(resolve));
  }
  list(): Webhook[] {
    return [...this.store.values()];
  }

  /** The first list: its objects are announced as adds, then waiters hear it is synced (as Informer does). */
  async sync(...objects: Webhook[]): Promise<void> {
    for (const obj of objects) this.add(obj);
    this.synced = true;
    for (const resolve of this.waiters.splice(0)) resolve(true);
    await Promise.resolve();
    await Promise.resolve();
  }
  add(obj: Webhook): void {
    this.store.set(obj.metadata?.name ?? '', obj);
    for (const h of this.handlers) h.onAdd?.(obj);
  }
  update(obj: Webhook): void {
    const old = this.store.get(obj.metadata?.name ?? '') ?? obj;
    this.store.set(obj.metadata?.name ?? '', obj);
    for (const h of this.handlers) h.onUpdate?.(old, obj);
  }
  remove(obj: Webhook): void {
    this.store.delete(obj.metadata?.name ?? '');
    for (const h of this.handlers) h.onDelete?.(obj);
  }
}

function guarded(signal = new AbortController().signal) {
  const informer = new HandInformer();
  const applies: string[] = [];
  let lastReason = '';
  guardObject<Webhook>({
    informer,
    difference: (live) =>
      live.webhooks?.[0]?.failurePolicy === 'Ignore' ? undefined : '.webhooks[0].failurePolicy',
    apply: () => applies.push(lastReason),
    onDrift: (difference, atStart) => {
      lastReason = atStart ? `${difference} at start` : difference;
    },
    signal,
  });
  return { informer, applies };
}

describe('guardObject: keeping one object as meshrev applies it', () => {
  test('writes nothing when the first list finds the object as desired', async () => {
    const { informer, applies } = guarded();
    expect(informer.started).toBe(true);
    await informer.sync(webhook('Ignore'));
    expect(applies).toEqual([]);
    // meshrev's own apply coming back as an event that matches costs nothing either.
    informer.update(webhook('Ignore', '2'));
    expect(applies).toEqual([]);
  });

  test('applies once when the first list finds it missing, and once when it finds it different', async () => {
    const missing = guarded();
    await missing.informer.sync();
    expect(missing.applies).toEqual([`${MISSING} at start`]);

    const edited = guarded();
    await edited.informer.sync(webhook('Fail'));
    expect(edited.applies).toEqual(['.webhooks[0].failurePolicy at start']);
  });

  test('applies again whenever it is deleted or a field meshrev sets is edited, and not for other updates', async () => {
    const { informer, applies } = guarded();
    await informer.sync(webhook('Ignore'));
    informer.update(webhook('Fail', '2'));
    informer.update(webhook('Ignore', '3'));
    informer.remove(webhook('Ignore', '3'));
    expect(applies).toEqual(['.webhooks[0].failurePolicy', MISSING]);
  });

  test('stops watching when the signal aborts, and applies nothing after', async () => {
    const leadership = new AbortController();
    const { informer, applies } = guarded(leadership.signal);
    leadership.abort();
    expect(informer.stopped).toBe(true);
    await informer.sync();
    informer.remove(webhook('Ignore'));
    expect(applies).toEqual([]);
  });

  test('does nothing at all under a signal already aborted', () => {
    const leadership = new AbortController();
    leadership.abort();
    const { informer, applies } = guarded(leadership.signal);
    expect(informer.started).toBe(false);
    expect(applies).toEqual([]);
  });
});
