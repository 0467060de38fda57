import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, it } from '@jest/globals';
import {
  CertificateManager,
  type CertificateManagerOptions,
} from '../../../../src/injector/tls/certificate-manager.js';
import {
  generateCertificateAuthority,
  injectorDnsNames,
  materialFromSecret,
  secretFromMaterial,
  servingProblem,
  type TlsMaterial,
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
    const stored = await store.get(NAMESPACE, SECRET);
    if (stored === undefined) throw new Error('Secret missing');
    const { 'tls.key': _droppedKey, ...withoutKey } = stored.data ?? {};
    store.put({ ...stored, data: withoutKey });

    const repaired = await newManager(store, clock).start();
    expect(repaired.caCertPem).toBe(initial.caCertPem);
    expect(repaired.certPem).not.toBe(initial.certPem);

    const renamed = await newManager(store, clock, { extraDnsNames: ['localhost'] }).start();
    expect(renamed.caCertPem).toBe(initial.caCertPem);
    expect(new X509Certificate(renamed.certPem).checkHost('localhost')).toBe('localhost');
  });

  it('regenerates the CA when the stored CA is unusable', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const initial = await newManager(store, clock).start();
    const otherCa = await generateCertificateAuthority({ now: clock.now() });
    store.put(
      secretFromMaterial({ ...initial, caKeyPem: otherCa.keyPem }, { name: SECRET, namespace: NAMESPACE }),
    );

    const regenerated = await newManager(store, clock).start();

    expect(regenerated.caCertPem).not.toBe(initial.caCertPem);
    expect(servingProblem(regenerated, { now: clock.now(), dnsNames: DNS_NAMES })).toBeUndefined();
    expect(await storedMaterial(store)).toEqual(regenerated);
  });

  it('replaces a CA that could no longer sign a full-length leaf', async () => {
    const store = new InMemorySecretStore();
    const clock = new FakeClock();
    const initial = await newManager(store, clock, { caValidityMs: 500 * DAY_MS }).start();
    clock.advanceDays(100);
    const beforeCaAges = await newManager(store, clock).start();
    expect(beforeCaAges).toEqual(initial);

    clock.advanceDays(50);
    const renewed = await newManager(store, clock).start();

    expect(renewed.caCertPem).not.toBe(initial.caCertPem);
    expect(new X509Certificate(renewed.caCertPem).validToDate.getTime()).toBeGreaterThan(
      clock.now().getTime() + 3000 * DAY_MS,
    );
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
