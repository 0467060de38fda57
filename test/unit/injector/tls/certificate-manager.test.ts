import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  CertificateManager,
  nextRotationStepInMs,
  type CertificateManagerOptions,
} from '../../../../src/injector/tls/certificate-manager.js';
import {
  generateCertificateAuthority,
  injectorDnsNames,
  leafProblem,
  ROTATION_ANNOTATIONS,
  materialFromSecret,
  secretFromMaterial,
  servingProblem,
  trustBundlePem,
  type TlsMaterial,
  type TlsSecret,
} from '../../../../src/injector/tls/certificates.js';
import { InMemorySecretStore, SecretStoreError } from '../../../../src/injector/tls/secret-store.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const NAMESPACE = 'meshrev-system';
const SECRET = 'meshrev-injector-tls';
const DNS_NAMES = injectorDnsNames('meshrev-injector', NAMESPACE);

class FakeClock {
  constructor(private ms = Date.parse('2026-09-01T12:00:00Z')) {}
  now = (): Date => new Date(this.ms);
  advanceDays(days: number): void {
    this.ms += days * DAY_MS;
  }
  advanceMinutes(minutes: number): void {
    this.ms += minutes * 60_000;
  }
}

const managers: CertificateManager[] = [];
afterEach(() => {
  for (const manager of managers.splice(0)) manager.stop();
});

function newManager(
  store: InMemorySecretStore,
  clock: FakeClock,
  options: Partial<CertificateManagerOptions> = {},
) {
  const manager = new CertificateManager({
    store,
    now: clock.now,
    extraIpAddresses: ['127.0.0.1'],
    ...options,
  });
  managers.push(manager);
  return manager;
}

function storedMaterial(store: InMemorySecretStore): Promise<TlsMaterial | undefined> {
  return store
    .get(NAMESPACE, SECRET)
    .then((secret) => (secret === undefined ? undefined : materialFromSecret(secret)));
}

async function storedSecret(store: InMemorySecretStore): Promise<TlsSecret> {
  const secret = await store.get(NAMESPACE, SECRET);
  if (secret === undefined) throw new Error('Secret missing');
  return secret;
}

/** Replaces the stored Secret's annotations, as `kubectl annotate` would. */
async function annotateStoredSecret(
  store: InMemorySecretStore,
  annotations: Record<string, string>,
): Promise<void> {
  const secret = await storedSecret(store);
  store.put({ ...secret, metadata: { ...secret.metadata, annotations } });
}

function serial(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Holds every `get` until `parties` of them arrived, so concurrent managers all read before anyone writes. */
function getBarrier(store: InMemorySecretStore, parties: number): void {
  let arrived = 0;
  let release: () => void = () => undefined;
  const allArrived = new Promise<void>((resolve) => (release = resolve));
  store.beforeOperation = async (operation) => {
    if (operation !== 'get' || arrived >= parties) return;
    arrived += 1;
    if (arrived === parties) release();
    await allArrived;
  };
}

describe('CertificateManager', () => {
  it('creates the Secret with a CA and a serving certificate when none exists', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const manager = newManager(store, clock);
    const changes: TlsMaterial[] = [];
    manager.onChange((material) => changes.push(material));

    const material = await manager.start();

    expect(store.calls.map((call) => call.operation)).toEqual(['get', 'create']);
    const secret = await store.get(NAMESPACE, SECRET);
    expect(secret?.type).toBe('kubernetes.io/tls');
    expect(secret?.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('meshrev');
    expect(materialFromSecret(secret ?? { data: {} })).toEqual(material);
    expect(
      servingProblem(material, { now: clock.now(), dnsNames: DNS_NAMES, ipAddresses: ['127.0.0.1'] }),
    ).toBe(undefined);
    expect(changes).toEqual([material]);
    expect(manager.current()).toBe(material);
  });

  it('reuses the stored Secret after a restart without writing or changing anything', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const first = await newManager(store, clock).start();
    clock.advanceDays(30);
    store.calls.length = 0;

    const restarted = await newManager(store, clock).start();

    expect(restarted).toEqual(first);
    expect(store.calls.map((call) => call.operation)).toEqual(['get']);
  });

  it('lets the loser of a create race adopt the winner’s Secret', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    getBarrier(store, 2);

    const [a, b] = await Promise.all([newManager(store, clock).start(), newManager(store, clock).start()]);

    expect(a).toEqual(b);
    expect(await storedMaterial(store)).toEqual(a);
    const operations = store.calls.map((call) => call.operation);
    expect(operations.filter((operation) => operation === 'create')).toHaveLength(2);
    expect((await store.get(NAMESPACE, SECRET))?.metadata.resourceVersion).toBe('1');
  });

  it('reissues only the leaf when a third of its lifetime remains, keeping the CA and telling listeners', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const manager = newManager(store, clock);
    const initial = await manager.start();
    const changes: TlsMaterial[] = [];
    manager.onChange((material) => changes.push(material));

    clock.advanceDays(200);
    expect(await manager.refresh()).toEqual(initial);
    expect(changes).toHaveLength(0);

    clock.advanceDays(50);
    const rotated = await manager.refresh();

    expect(rotated.caCertPem).toBe(initial.caCertPem);
    expect(rotated.caKeyPem).toBe(initial.caKeyPem);
    expect(serial(rotated.certPem)).not.toBe(serial(initial.certPem));
    expect(changes).toEqual([rotated]);
    expect(await storedMaterial(store)).toEqual(rotated);
    expect(manager.certificateExpirySeconds()).toBeCloseTo((365 * DAY_MS) / 1000, -2);
  });

  it('converges two replicas rotating at the same time on one new leaf', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const a = newManager(store, clock);
    const b = newManager(store, clock);
    const initial = await a.start();
    await b.start();
    clock.advanceDays(300);
    getBarrier(store, 2);

    const [fromA, fromB] = await Promise.all([a.refresh(), b.refresh()]);

    expect(fromA).toEqual(fromB);
    expect(fromA.caCertPem).toBe(initial.caCertPem);
    expect(fromA.certPem).not.toBe(initial.certPem);
    expect(await storedMaterial(store)).toEqual(fromA);
  });

  it('picks up a leaf another replica wrote without writing itself', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const writer = newManager(store, clock);
    const reader = newManager(store, clock);
    await writer.start();
    await reader.start();
    const seen: TlsMaterial[] = [];
    reader.onChange((material) => seen.push(material));
    clock.advanceDays(260);

    const rotated = await writer.refresh();
    store.calls.length = 0;
    const picked = await reader.refresh();

    expect(picked).toEqual(rotated);
    expect(seen).toEqual([rotated]);
    expect(store.calls.map((call) => call.operation)).toEqual(['get']);
  });

  it('reissues the leaf but keeps the CA when the serving pair is missing or does not cover the names', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const initial = await newManager(store, clock).start();
    const stored = await storedSecret(store);
    const { 'tls.key': _droppedKey, ...withoutKey } = stored.data ?? {};
    store.put({ ...stored, data: withoutKey });

    const repaired = await newManager(store, clock).start();
    expect(repaired.caCertPem).toBe(initial.caCertPem);
    expect(repaired.certPem).not.toBe(initial.certPem);

    const renamed = await newManager(store, clock, { extraDnsNames: ['localhost'] }).start();
    expect(renamed.caCertPem).toBe(initial.caCertPem);
    expect(new X509Certificate(renamed.certPem).checkHost('localhost')).toBe('localhost');
  });

  it('recreates the Secret when it is deleted between the read and the update', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const manager = newManager(store, clock);
    await manager.start();
    clock.advanceDays(300);
    store.beforeOperation = (operation) => {
      if (operation === 'update') store.delete(NAMESPACE, SECRET);
    };

    const material = await manager.refresh();

    expect(store.calls.map((call) => call.operation).slice(-3)).toEqual(['update', 'get', 'create']);
    expect(await storedMaterial(store)).toEqual(material);
  });

  it('tells a late subscriber what it adopted after the material the subscriber started with', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const writer = newManager(store, clock);
    const reader = newManager(store, clock);
    await writer.start();
    const served = await reader.start();
    await annotateStoredSecret(store, { [ROTATION_ANNOTATIONS.replaceCa]: 'now' });
    // Another replica stages a CA, and this one adopts it before anything listens (as during the operator's start).
    const staged = await writer.refresh();
    expect(await reader.refresh()).toEqual(staged);

    const late: TlsMaterial[] = [];
    const upToDate: TlsMaterial[] = [];
    reader.onChange((material) => late.push(material), served);
    reader.onChange((material) => upToDate.push(material), staged);

    expect(late).toEqual([staged]);
    expect(upToDate).toEqual([]);
    await reader.refresh();
    expect(late).toEqual([staged]);
  });

  it('rejects start when the store fails and gives up after repeated conflicts', async () => {
    const failing = new InMemorySecretStore();
    failing.beforeOperation = () => {
      throw new Error('apiserver unavailable');
    };
    await expect(newManager(failing, new FakeClock()).start()).rejects.toThrow('apiserver unavailable');

    const contended = new InMemorySecretStore();
    contended.beforeOperation = (operation) => {
      if (operation === 'create') throw new SecretStoreError('already exists', 409);
    };
    await expect(newManager(contended, new FakeClock(), { maxConflictRetries: 3 }).start()).rejects.toThrow(
      /after 3 conflicts/,
    );
    expect(contended.calls.filter((call) => call.operation === 'create')).toHaveLength(3);
  });

  it('rotates on its own timer and survives failing checks', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const manager = newManager(store, clock, { checkIntervalMs: 5 });
    const initial = await manager.start();
    const changes: TlsMaterial[] = [];
    manager.onChange((material) => changes.push(material));

    store.beforeOperation = () => {
      throw new Error('transient outage');
    };
    const failedBefore = store.calls.length;
    await waitFor(() => store.calls.length >= failedBefore + 3);
    expect(manager.current()).toBe(initial);

    store.beforeOperation = undefined;
    clock.advanceDays(300);
    await waitFor(() => changes.length === 1);
    expect(changes[0]?.caCertPem).toBe(initial.caCertPem);
    expect(changes[0]?.certPem).not.toBe(initial.certPem);

    manager.stop();
    const callsAfterStop = store.calls.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(store.calls.length).toBe(callsAfterStop);
  });

  it('reports the seconds left on the served certificate', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const manager = newManager(store, clock);
    expect(manager.certificateExpirySeconds()).toBe(0);
    expect(() => manager.current()).toThrow(/not loaded/);
    await manager.start();
    expect(manager.certificateExpirySeconds()).toBeCloseTo((365 * DAY_MS) / 1000, -2);
    clock.advanceDays(100);
    expect(manager.certificateExpirySeconds()).toBeCloseTo((265 * DAY_MS) / 1000, -2);
  });
});

/** The CA certificates a material's trust bundle holds, as serial numbers. */
function trustedSerials(material: TlsMaterial): string[] {
  return (
    trustBundlePem(material).match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? []
  ).map(serial);
}

/** Whether a bundle (as kube-apiserver would verify with it) trusts the leaf a material serves. */
function bundleTrustsLeaf(bundleOf: TlsMaterial, served: TlsMaterial): boolean {
  const cas =
    trustBundlePem(bundleOf).match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----\n?/g) ?? [];
  return cas.some(
    (caCertPem) =>
      leafProblem({ ...served, caCertPem }, { now: new Date(), dnsNames: DNS_NAMES }) === undefined,
  );
}

describe('CertificateManager CA rotation', () => {
  // Default overlap with the default 5-minute check interval: 2 × 5 min + 1 min.
  const OVERLAP_MINUTES = 11;

  async function storeWithCaKeyReplaced(
    clock: FakeClock,
  ): Promise<{ store: InMemorySecretStore; initial: TlsMaterial }> {
    const store = new InMemorySecretStore();
    const initial = await newManager(store, clock).start();
    const otherCa = await generateCertificateAuthority({ now: clock.now() });
    store.put(
      secretFromMaterial({ ...initial, caKeyPem: otherCa.keyPem }, { name: SECRET, namespace: NAMESPACE }),
    );
    return { store, initial };
  }

  it('stages a successor when the CA can no longer sign, keeps serving, then promotes and retires in turn', async () => {
    const clock = new FakeClock();
    const { store, initial } = await storeWithCaKeyReplaced(clock);
    const manager = newManager(store, clock);

    // 1. Staged: the same leaf and signing CA, a second CA in the bundle, the time on the Secret.
    const staged = await manager.start();
    expect(staged.certPem).toBe(initial.certPem);
    expect(staged.caCertPem).toBe(initial.caCertPem);
    const next = staged.rotation?.next;
    expect(next).toBeDefined();
    expect(trustedSerials(staged)).toEqual([serial(initial.caCertPem), serial(next?.certPem ?? '')]);
    const secret = await store.get(NAMESPACE, SECRET);
    expect(secret?.metadata.annotations?.[ROTATION_ANNOTATIONS.nextStagedAt]).toBe(clock.now().toISOString());
    expect(Object.keys(secret?.data ?? {}).sort()).toEqual([
      'ca.crt',
      'ca.key',
      'next-ca.crt',
      'next-ca.key',
      'tls.crt',
      'tls.key',
    ]);
    expect(await storedMaterial(store)).toEqual(staged);

    // Within the overlap nothing moves and nothing is written.
    clock.advanceMinutes(OVERLAP_MINUTES - 1);
    store.calls.length = 0;
    expect(await manager.refresh()).toEqual(staged);
    expect(store.calls.map((call) => call.operation)).toEqual(['get']);

    // 2. Promoted: the staged CA signs a new leaf; the replaced CA stays trusted.
    clock.advanceMinutes(1);
    const promoted = await manager.refresh();
    expect(promoted.caCertPem).toBe(next?.certPem);
    expect(leafProblem(promoted, { now: clock.now(), dnsNames: DNS_NAMES })).toBeUndefined();
    expect(promoted.rotation?.next).toBeUndefined();
    expect(promoted.rotation?.previous?.certPem).toBe(initial.caCertPem);
    expect(trustedSerials(promoted).sort()).toEqual(trustedSerials(staged).sort());
    expect(await storedMaterial(store)).toEqual(promoted);

    // 3. Retired: after another overlap only the new CA is trusted; then the Secret is left alone.
    clock.advanceMinutes(OVERLAP_MINUTES);
    const settled = await manager.refresh();
    expect(settled.rotation).toBeUndefined();
    expect(settled.certPem).toBe(promoted.certPem);
    expect(trustedSerials(settled)).toEqual([serial(next?.certPem ?? '')]);
    const settledSecret = await store.get(NAMESPACE, SECRET);
    expect(Object.keys(settledSecret?.data ?? {}).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    expect(settledSecret?.metadata.annotations ?? {}).toEqual({});
    store.calls.length = 0;
    clock.advanceDays(1);
    expect(await manager.refresh()).toEqual(settled);
    expect(store.calls.map((call) => call.operation)).toEqual(['get']);
  });

  it('keeps every replica’s leaf trusted by every replica’s bundle through a rotation', async () => {
    const clock = new FakeClock();
    const { store } = await storeWithCaKeyReplaced(clock);
    const replicas = [newManager(store, clock), newManager(store, clock), newManager(store, clock)];
    const materials: TlsMaterial[] = [];
    for (const replica of replicas) materials.push(await replica.start());

    // Passes every 5 minutes, staggered: replica i checks at minute 5k + i (the leader could be any of them, and
    // kube-apiserver trusts the bundle the leader published at its last pass).
    const seenCas = new Set<string>();
    for (let minute = 1; minute <= 60; minute++) {
      clock.advanceMinutes(1);
      for (const [i, replica] of replicas.entries()) {
        if (minute % 5 === i) materials[i] = await replica.refresh();
      }
      for (const served of materials) {
        for (const bundleOf of materials) expect(bundleTrustsLeaf(bundleOf, served)).toBe(true);
      }
      for (const material of materials) seenCas.add(serial(material.caCertPem));
    }
    // It did rotate: every replica ends on one new CA alone.
    expect(seenCas.size).toBe(2);
    expect(new Set(materials.map((m) => m.caCertPem)).size).toBe(1);
    expect(materials.every((m) => m.rotation === undefined)).toBe(true);
  });

  it('stages a successor for a CA that could no longer sign a full-length leaf', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const initial = await newManager(store, clock, { caValidityMs: 500 * DAY_MS }).start();
    clock.advanceDays(100);
    expect(await newManager(store, clock).start()).toEqual(initial);

    clock.advanceDays(50);
    const manager = newManager(store, clock);
    const staged = await manager.start();
    expect(staged.caCertPem).toBe(initial.caCertPem);
    expect(new X509Certificate(staged.rotation?.next?.certPem ?? '').validToDate.getTime()).toBeGreaterThan(
      clock.now().getTime() + 3000 * DAY_MS,
    );
    clock.advanceMinutes(OVERLAP_MINUTES);
    const promoted = await manager.refresh();
    expect(promoted.caCertPem).toBe(staged.rotation?.next?.certPem);
    expect(serial(promoted.certPem)).not.toBe(serial(initial.certPem));
  });

  it('keeps a leaf that ends with its nearly expired CA instead of rewriting the Secret every pass, and replaces the CA', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    // A CA with 10 days left, and a leaf capped at the CA's end: less than the 30-day floor from the start.
    const initial = await newManager(store, clock, { caValidityMs: 10 * DAY_MS }).start();
    const manager = newManager(store, clock);
    store.calls.length = 0;

    const staged = await manager.start();
    for (let pass = 1; pass <= 5; pass++) {
      clock.advanceMinutes(1);
      await manager.refresh();
    }

    // One write: staging the successor. A reissued leaf would end with the same CA, due again at once.
    expect(store.calls.filter((call) => call.operation === 'update')).toHaveLength(1);
    expect(manager.current()).toEqual(staged);
    expect(staged.certPem).toBe(initial.certPem);
    expect(staged.rotation?.next).toBeDefined();
    clock.advanceMinutes(OVERLAP_MINUTES);
    const promoted = await manager.refresh();
    expect(promoted.caCertPem).toBe(staged.rotation?.next?.certPem);
    expect(new X509Certificate(promoted.certPem).validToDate.getTime()).toBeGreaterThan(
      clock.now().getTime() + 360 * DAY_MS,
    );
  });

  it('lets a new CA sign at once when nothing stored can be served, keeping a readable old CA trusted', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const initial = await newManager(store, clock).start();
    const otherCa = await generateCertificateAuthority({ now: clock.now() });
    // The CA cannot sign (wrong key) and the leaf is gone.
    const broken = secretFromMaterial(
      { ...initial, caKeyPem: otherCa.keyPem },
      { name: SECRET, namespace: NAMESPACE },
    );
    const { 'tls.crt': _cert, 'tls.key': _key, ...withoutLeaf } = broken.data ?? {};
    store.put({ ...broken, data: withoutLeaf });

    const regenerated = await newManager(store, clock).start();

    expect(regenerated.caCertPem).not.toBe(initial.caCertPem);
    expect(servingProblem(regenerated, { now: clock.now(), dnsNames: DNS_NAMES })).toBeUndefined();
    expect(regenerated.rotation?.previous?.certPem).toBe(initial.caCertPem);
    expect(await storedMaterial(store)).toEqual(regenerated);
  });

  it.each([
    ['unreadable', Buffer.from('garbage').toString('base64')],
    ['emptied', ''],
  ])(
    'restores ca.crt when it is %s, from the CA it serves, instead of signing with a new CA at once',
    async (_, caCert) => {
      const store = new InMemorySecretStore();
      const clock = new FakeClock();
      const manager = newManager(store, clock);
      const initial = await manager.start();
      const secret = await storedSecret(store);
      store.put({ ...secret, data: { ...secret.data, 'ca.crt': caCert } });

      const repaired = await manager.refresh();

      expect(repaired).toEqual(initial);
      expect(await storedMaterial(store)).toEqual(initial);
    },
  );

  it('without a CA of its own to restore (a replica starting now), still replaces an unreadable ca.crt', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const initial = await newManager(store, clock).start();
    const secret = await storedSecret(store);
    store.put({
      ...secret,
      data: { ...secret.data, 'ca.crt': Buffer.from('garbage').toString('base64') },
    });

    const replaced = await newManager(store, clock).start();

    expect(replaced.caCertPem).not.toBe(initial.caCertPem);
    expect(servingProblem(replaced, { now: clock.now(), dnsNames: DNS_NAMES })).toBeUndefined();
  });

  it('promotes a staged successor at once, rather than generating another, when the served leaf breaks', async () => {
    const clock = new FakeClock();
    const { store } = await storeWithCaKeyReplaced(clock);
    const staged = await newManager(store, clock).start();
    const secret = await storedSecret(store);
    store.put({ ...secret, data: { ...secret.data, 'tls.crt': Buffer.from('garbage').toString('base64') } });

    const promoted = await newManager(store, clock).start();

    expect(promoted.caCertPem).toBe(staged.rotation?.next?.certPem);
    expect(promoted.rotation?.previous?.certPem).toBe(staged.caCertPem);
    expect(leafProblem(promoted, { now: clock.now(), dnsNames: DNS_NAMES })).toBeUndefined();
  });

  it('keeps what it does not manage through an update: owner references, finalizers and the Secret type', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const manager = newManager(store, clock);
    await manager.start();
    const secret = await storedSecret(store);
    const ownerReferences = [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'meshrev', uid: 'd1' }];
    store.put({
      ...secret,
      type: 'Opaque',
      metadata: {
        ...secret.metadata,
        ownerReferences,
        finalizers: ['example.com/keep'],
        annotations: { [ROTATION_ANNOTATIONS.replaceCa]: 'now' },
      },
    });

    await manager.refresh();

    const updated = await storedSecret(store);
    expect(updated.metadata.annotations?.[ROTATION_ANNOTATIONS.nextStagedAt]).toBeDefined();
    expect(updated.metadata).toMatchObject({ ownerReferences, finalizers: ['example.com/keep'] });
    expect(updated.type).toBe('Opaque');
  });

  it('stages a new CA when asked by annotation, once, and keeps the user’s other annotations', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const manager = newManager(store, clock);
    const initial = await manager.start();
    await annotateStoredSecret(store, { [ROTATION_ANNOTATIONS.replaceCa]: 'key leaked', owner: 'platform' });

    const staged = await manager.refresh();

    expect(staged.certPem).toBe(initial.certPem);
    expect(staged.rotation?.next).toBeDefined();
    const annotations = (await store.get(NAMESPACE, SECRET))?.metadata.annotations;
    expect(annotations).toEqual({
      owner: 'platform',
      [ROTATION_ANNOTATIONS.nextStagedAt]: clock.now().toISOString(),
    });
    clock.advanceMinutes(OVERLAP_MINUTES);
    const promoted = await manager.refresh();
    expect(promoted.caCertPem).toBe(staged.rotation?.next?.certPem);
    expect(promoted.rotation?.next).toBeUndefined();
  });

  it('recreates a deleted Secret from what it serves, mid-rotation too, so no webhook loses trust', async () => {
    const clock = new FakeClock();
    const { store } = await storeWithCaKeyReplaced(clock);
    const manager = newManager(store, clock);
    const staged = await manager.start();
    store.delete(NAMESPACE, SECRET);
    clock.advanceMinutes(1);

    const recreated = await manager.refresh();

    expect(recreated).toEqual(staged);
    expect(await storedMaterial(store)).toEqual(staged);
    // The overlap runs from the original staging, not from the deletion.
    clock.advanceMinutes(OVERLAP_MINUTES - 1);
    expect((await manager.refresh()).caCertPem).toBe(staged.rotation?.next?.certPem);
    // A replica that serves nothing yet (a fresh start on an empty namespace) creates a new CA.
    const fresh = await newManager(new InMemorySecretStore(), clock).start();
    expect(fresh.caCertPem).not.toBe(staged.caCertPem);
  });

  it('replaces an unusable staged CA and restarts an overlap whose start cannot be read', async () => {
    const clock = new FakeClock();
    const { store } = await storeWithCaKeyReplaced(clock);
    const staged = await newManager(store, clock).start();
    const secret = await storedSecret(store);

    store.put({ ...secret, data: { ...secret.data, 'next-ca.key': initial64(staged.caKeyPem) } });
    const restaged = await newManager(store, clock).start();
    expect(restaged.rotation?.next?.certPem).toBeDefined();
    expect(restaged.rotation?.next?.certPem).not.toBe(staged.rotation?.next?.certPem);

    const current = await storedSecret(store);
    clock.advanceMinutes(OVERLAP_MINUTES);
    store.put({
      ...current,
      metadata: {
        ...current.metadata,
        annotations: { [ROTATION_ANNOTATIONS.nextStagedAt]: 'yesterday-ish' },
      },
    });
    const stamped = await newManager(store, clock).start();
    expect(stamped.caCertPem).toBe(staged.caCertPem);
    expect(stamped.rotation?.next?.since).toEqual(clock.now());
  });
});

function initial64(pem: string): string {
  return Buffer.from(pem).toString('base64');
}

/** A stand-in for the operator's Secret watch: the test decides when a change is announced. */
class FakeWatch {
  private listener: (() => void) | undefined;
  subscriptions = 0;
  readonly subscribe = (onChange: () => void): (() => void) => {
    this.subscriptions += 1;
    this.listener = onChange;
    return () => {
      this.listener = undefined;
    };
  };
  announce(): void {
    this.listener?.();
  }
  get watching(): boolean {
    return this.listener !== undefined;
  }
}

function gets(store: InMemorySecretStore): number {
  return store.calls.filter((call) => call.operation === 'get').length;
}

describe('CertificateManager reacting to Secret changes', () => {
  const HOUR_MS = 60 * 60 * 1000;

  it('acts on a replace-ca request as soon as the Secret change is announced, not at the next check', async () => {
    const store = new InMemorySecretStore();
    const watch = new FakeWatch();
    const manager = newManager(store, new FakeClock(), { checkIntervalMs: HOUR_MS, watch: watch.subscribe });
    await manager.start();
    expect(watch.subscriptions).toBe(1);
    const changes: TlsMaterial[] = [];
    manager.onChange((material) => changes.push(material));

    await annotateStoredSecret(store, { [ROTATION_ANNOTATIONS.replaceCa]: 'now' });
    watch.announce();

    await waitFor(() => changes.length === 1);
    expect(changes[0]?.rotation?.next).toBeDefined();
    manager.stop();
    expect(watch.watching).toBe(false);
  });

  it('reads the Secret once more when a change is announced during a pass, however many announcements', async () => {
    const store = new InMemorySecretStore();
    const watch = new FakeWatch();
    const manager = newManager(store, new FakeClock(), { checkIntervalMs: HOUR_MS, watch: watch.subscribe });
    await manager.start();
    const before = gets(store);

    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    store.beforeOperation = async (operation) => {
      if (operation === 'get' && gets(store) === before + 1) await held;
    };
    watch.announce();
    await waitFor(() => gets(store) === before + 1);
    // The pass in progress may already have read the Secret: these must not be lost, nor each cost a read.
    watch.announce();
    watch.announce();
    release();

    await waitFor(() => gets(store) === before + 2);
    // That no third read follows can only be seen by letting time pass.
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(gets(store)).toBe(before + 2);
  });

  it('takes each step of a CA replacement when its overlap ends, without waiting for a check', async () => {
    const store = new InMemorySecretStore();
    const watch = new FakeWatch();
    // Real time: the step timers run on it.
    const manager = new CertificateManager({
      store,
      extraIpAddresses: ['127.0.0.1'],
      checkIntervalMs: HOUR_MS,
      caOverlapMs: 150,
      watch: watch.subscribe,
    });
    managers.push(manager);
    const initial = await manager.start();
    const changes: TlsMaterial[] = [];
    manager.onChange((material) => changes.push(material));

    await annotateStoredSecret(store, { [ROTATION_ANNOTATIONS.replaceCa]: 'now' });
    watch.announce();

    // staged, promoted, retired: no announcement and no check after the first.
    await waitFor(() => changes.length === 3, 10_000);
    const [staged, promoted, retired] = changes;
    expect(staged?.certPem).toBe(initial.certPem);
    expect(promoted?.caCertPem).toBe(staged?.rotation?.next?.certPem);
    expect(promoted?.rotation?.previous?.certPem).toBe(initial.caCertPem);
    expect(retired?.rotation).toBeUndefined();
    expect(retired?.caCertPem).not.toBe(initial.caCertPem);
  }, 15_000);
});

describe('nextRotationStepInMs', () => {
  const now = new Date('2026-09-01T12:00:00Z');
  const ago = (minutes: number): Date => new Date(now.getTime() - minutes * 60_000);
  const material = (rotation?: TlsMaterial['rotation']): TlsMaterial => ({
    caCertPem: 'ca',
    caKeyPem: 'key',
    certPem: 'leaf',
    keyPem: 'leaf-key',
    ...(rotation ? { rotation } : {}),
  });
  const overlap = 11 * 60_000;

  it.each([
    ['nothing pending', material(), undefined],
    [
      'a CA staged 4 minutes ago',
      material({ next: { certPem: 'n', keyPem: 'k', since: ago(4) } }),
      7 * 60_000,
    ],
    ['a CA retired 10 minutes ago', material({ previous: { certPem: 'p', since: ago(10) } }), 60_000],
    [
      'both, the earlier deciding',
      material({
        next: { certPem: 'n', keyPem: 'k', since: ago(1) },
        previous: { certPem: 'p', since: ago(5) },
      }),
      6 * 60_000,
    ],
    ['a step already overdue', material({ previous: { certPem: 'p', since: ago(30) } }), 0],
    [
      'a start time not stamped yet',
      material({ next: { certPem: 'n', keyPem: 'k', since: undefined } }),
      undefined,
    ],
  ])('%s', (_name, input, expected) => {
    expect(nextRotationStepInMs(input, overlap, now)).toBe(expected);
  });
});
