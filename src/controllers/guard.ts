// Keeping one object the way meshrev applies it, for as long as a signal lasts (the leader's hold on
// meshrev-validation). The watch decides: an object found as desired costs no write, at start or later, and one
// found missing or edited is applied again. The caller's apply is expected to retry on its own.
import type { InformerHandlers } from '../runtime/informer.js';
import type { KubeObject } from '../runtime/types.js';

/** The part of an informer (over the one guarded object) the guard uses. */
export interface GuardedObjectInformer<T extends KubeObject> {
  addHandlers(handlers: InformerHandlers<T>): () => void;
  start(): void;
  stop(): Promise<void>;
  waitForSync(signal?: AbortSignal): Promise<boolean>;
  list(): T[];
}

export interface ObjectGuardOptions<T extends KubeObject> {
  informer: GuardedObjectInformer<T>;
  /** The first field meshrev sets that the live object does not have as desired; undefined when it matches. */
  difference: (live: T) => string | undefined;
  /** Asks for the object to be applied (again); called once per change seen, so it should coalesce. */
  apply: () => void;
  /**
   * Told why the object is applied: its first difference, or that it is missing; `atStart` when the first list
   * found it so (a fresh install, or an upgrade of meshrev), rather than a change made while guarding.
   */
  onDrift?: (difference: string, atStart: boolean) => void;
  signal: AbortSignal;
}

export const MISSING = 'the whole object (missing)';

/**
 * Watches the object through `informer` until `signal` aborts and applies it whenever it is missing or differs.
 * Its first list decides at start: nothing is written when the object is already as desired, and a missing one is
 * applied once the list shows it absent. meshrev's own applies come back as events that match, so they cost
 * nothing more.
 */
export function guardObject<T extends KubeObject>(options: ObjectGuardOptions<T>): void {
  const { informer, signal } = options;
  if (signal.aborted) return;
  let listed = false;
  const applyIfNeeded = (live: T | undefined): void => {
    if (signal.aborted) return;
    const difference = live === undefined ? MISSING : options.difference(live);
    if (difference === undefined) return;
    options.onDrift?.(difference, !listed);
    options.apply();
  };
  informer.addHandlers({
    onAdd: applyIfNeeded,
    onUpdate: (_old, live) => applyIfNeeded(live),
    onDelete: () => applyIfNeeded(undefined),
  });
  informer.start();
  signal.addEventListener('abort', () => void informer.stop(), { once: true });
  // An object that does not exist yet produces no event: the first list showing nothing is the cue.
  void informer.waitForSync(signal).then((synced) => {
    if (synced && informer.list().length === 0) applyIfNeeded(undefined);
    listed = synced;
  });
}
