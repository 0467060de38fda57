// Two operator PROCESSES (the production entry point) on one Lease: exactly one reconciles; SIGKILL of the
// leader hands over after the lease expires and the successor converges what changed meanwhile; SIGTERM
// releases the lease at once and drains an in-flight admission; every live replica answers admissions
// throughout.
import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import type { KubeClient, Lease } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import { uniqueName, waitFor } from '../support/kube.js';
import { ensureIstioSystemNamespace, installCrds, testClient } from '../support/operator.js';
import {
  injectorCa,
  openAdmission,
  podReview,
  sendAdmission,
  startProcessOperator,
  stopAllProcessOperators,
  withOperatorLogs,
  type AdmissionResult,
  type ProcessOperator,
} from '../support/process-operator.js';

type Obj = KubeObject & Record<string, unknown>;
type Webhooks = Obj & { webhooks?: { clientConfig: { service?: { port?: number } } }[] };
type WithConditions = Obj & { status?: { conditions?: { type: string; status: string }[] } };

const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
const MWC = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
const leaseName = uniqueName('meshrev-le');
const revisions = [uniqueName('le-a'), uniqueName('le-b')] as const;
const [firstRev, secondRev] = revisions;

let client: KubeClient;
let ca: string;
const operators: ProcessOperator[] = [];

function args(): string[] {
  return [
    '--leader-elect=true',
    `--lease-name=${leaseName}`,
    '--dev-webhook-routing=true',
    '--create-default-tag=false',
    '--resync-seconds=0',
  ];
}

async function start(name: string): Promise<ProcessOperator> {
  const op = await startProcessOperator(name, args());
  operators.push(op);
  return op;
}

async function holder(): Promise<string> {
  const lease = await client.getOptional<Lease>({
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    namespace: 'meshrev-system',
    name: leaseName,
  });
  return lease?.spec?.holderIdentity ?? '';
}

function withLogs<T>(fn: () => Promise<T>): () => Promise<T> {
  return withOperatorLogs(operators, fn);
}

async function reconciled(name: string): Promise<boolean> {
  const cpr = await client.getOptional<WithConditions>({ ...CPR, name });
  return cpr?.status?.conditions?.some((c) => c.type === 'Reconciled' && c.status === 'True') ?? false;
}

function review(uid: string): string {
  return podReview(uid, 'default', {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `pod-${uid}`, namespace: 'default' },
    spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
  });
}

function admit(op: ProcessOperator, revision: string, uid: string): Promise<AdmissionResult> {
  return sendAdmission({ port: op.injectorPort, path: `/inject/${revision}`, ca }, review(uid));
}

interface Probe {
  at: number;
  replica: string;
  ok: boolean;
  detail: string;
}

/** Sends an AdmissionReview to every replica in turn until stopped; records every answer. */
function admissionLoad(replicas: ProcessOperator[]): { probes: Probe[]; stop(): Promise<Probe[]> } {
  const probes: Probe[] = [];
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      await Promise.all(
        replicas.map(async (op) => {
          const at = Date.now();
          try {
            const result = await admit(op, firstRev, `load-${op.name}-${n}`);
            probes.push({
              at,
              replica: op.name,
              ok: result.status === 200 && result.patched,
              detail: JSON.stringify(result),
            });
          } catch (err) {
            probes.push({
              at,
              replica: op.name,
              ok: false,
              detail: err instanceof Error ? err.message : String(err),
            });
          }
        }),
      );
      n += 1;
      // Pacing for the load generator only (no test condition waits on it).
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    probes,
    stop: async () => {
      running = false;
      await loop;
      return probes;
    },
  };
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await ensureIstioSystemNamespace(client);
});

afterAll(async () => {
  await stopAllProcessOperators();
  for (const name of revisions) await client.delete({ ...CPR, name }).catch(() => undefined);
  await client
    .delete({
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      namespace: 'meshrev-system',
      name: leaseName,
    })
    .catch(() => undefined);
  client?.close();
});

describe('two operator processes on one lease', () => {
  let leader: ProcessOperator;
  let follower: ProcessOperator;

  test(
    'elect exactly one leader, which alone reconciles, while both serve the injector',
    withLogs(async () => {
      const a = await start('le-replica-a');
      const b = await start('le-replica-b');
      const holderName = await waitFor('a lease holder', async () => (await holder()) || undefined);
      expect([a.name, b.name]).toContain(holderName);
      [leader, follower] = holderName === a.name ? [a, b] : [b, a];
      await waitFor(
        'meshrev_leader 1 on the leader and 0 on the follower',
        async () =>
          (await leader.metric('meshrev_leader')) === 1 && (await follower.metric('meshrev_leader')) === 0,
      );

      await client.apply(
        { ...CPR, metadata: { name: firstRev }, spec: { version: '1.29.6' } } as KubeObject,
        {
          fieldManager: 'meshrev-tests',
          force: true,
        },
      );
      await waitFor(`${firstRev} Reconciled=True`, () => reconciled(firstRev), { timeoutMs: 45_000 });
      expect(
        await leader.metric('controller_runtime_reconcile_total', { controller: 'controlplanerevision' }),
      ).toBeGreaterThan(0);
      expect(await follower.metric('controller_runtime_reconcile_total')).toBe(0);
      expect(await holder()).toBe(leader.name);

      ca = await injectorCa(client);
      // The follower's revision informer may trail the leader's by a moment.
      for (const op of [leader, follower]) {
        const result = await waitFor(`${op.name} to inject for ${firstRev}`, async () => {
          const r = await admit(op, firstRev, `first-${op.name}`);
          return r.patched ? r : undefined;
        });
        expect(result).toMatchObject({ status: 200, allowed: true, patched: true });
      }
    }),
  );

  test(
    'hand over after SIGKILL of the leader: the survivor takes the lease and converges what changed meanwhile',
    withLogs(async () => {
      const load = admissionLoad([leader, follower]);
      await waitFor('admissions answered by both replicas', () =>
        [leader, follower].every((op) => load.probes.some((p) => p.replica === op.name && p.ok)),
      );
      const killedAt = Date.now();
      leader.kill('SIGKILL');
      const exit = await leader.exited;
      expect(exit.signal).toBe('SIGKILL');
      const deadAt = Date.now();

      // Changes nobody reconciles until the survivor leads.
      await client.apply(
        { ...CPR, metadata: { name: secondRev }, spec: { version: '1.30.3' } } as KubeObject,
        {
          fieldManager: 'meshrev-tests',
          force: true,
        },
      );
      await client.delete({ ...MWC, name: `istio-sidecar-injector-${firstRev}` });

      await waitFor(`${follower.name} to take the lease`, async () => (await holder()) === follower.name, {
        timeoutMs: 30_000,
      });
      const takeoverMs = Date.now() - killedAt;
      console.log(
        `leader election: SIGKILL takeover after ${(takeoverMs / 1000).toFixed(1)} s (lease 15 s, retry 2 s)`,
      );
      await waitFor(
        'meshrev_leader 1 on the survivor',
        async () => (await follower.metric('meshrev_leader')) === 1,
      );

      await waitFor(`${secondRev} Reconciled=True`, () => reconciled(secondRev), { timeoutMs: 45_000 });
      const mwcName = `istio-sidecar-injector-${firstRev}`;
      await waitFor('the deleted webhook configuration to be recreated', () =>
        client.getOptional({ ...MWC, name: mwcName }),
      );
      // It points at the survivor's injector now (dev routing: the port is the replica's own).
      await waitFor('the webhook configuration to point at the survivor', async () => {
        const live = await client.get<Webhooks>({ ...MWC, name: mwcName });
        return live.webhooks?.every((w) => w.clientConfig.service?.port === follower.injectorPort);
      });

      const probes = await load.stop();
      const survivorProbes = probes.filter((p) => p.replica === follower.name);
      const failuresOfSurvivor = survivorProbes.filter((p) => !p.ok);
      const failuresOfKilledWhileAlive = probes.filter(
        (p) => p.replica === leader.name && !p.ok && p.at < killedAt,
      );
      expect(survivorProbes.length).toBeGreaterThan(10);
      expect(probes.some((p) => p.replica === leader.name && p.ok && p.at < killedAt)).toBe(true);
      expect(failuresOfSurvivor.map((p) => p.detail)).toEqual([]);
      expect(failuresOfKilledWhileAlive.map((p) => p.detail)).toEqual([]);
      expect(probes.filter((p) => p.replica === leader.name && p.at > deadAt && p.ok)).toEqual([]);

      expect(await admit(follower, secondRev, 'after-takeover')).toMatchObject({
        status: 200,
        patched: true,
      });
    }),
    90_000,
  );

  test(
    'hand over at once on SIGTERM, which releases the lease and drains an in-flight admission',
    withLogs(async () => {
      const successor = await start('le-replica-c');
      const current = follower;
      expect(await holder()).toBe(current.name);
      await waitFor(
        `${successor.name} to serve ${firstRev}`,
        async () => (await admit(successor, firstRev, 'c-ready')).patched,
      );

      // An admission whose body is still arriving when the signal lands.
      const body = review('in-flight');
      const inFlight = openAdmission(
        { port: current.injectorPort, path: `/inject/${firstRev}`, ca },
        body,
        100,
      );
      await inFlight.sent;
      // A round trip on the same process: by its answer the admission's headers have been read.
      expect((await current.httpGet('/healthz')).status).toBe(200);

      const termAt = Date.now();
      current.kill('SIGTERM');
      // Expiry could not hand over before 15 s (the lease was renewed up to the signal): a holder change
      // within 10 s proves the lease was released.
      await waitFor(
        `${successor.name} to take the released lease`,
        async () => (await holder()) === successor.name,
        {
          timeoutMs: 10_000,
        },
      );
      console.log(`leader election: SIGTERM takeover after ${((Date.now() - termAt) / 1000).toFixed(1)} s`);
      expect(current.alive()).toBe(true);

      const answer = await inFlight.finish();
      expect(answer).toMatchObject({ status: 200, allowed: true, patched: true });
      const exit = await current.exited;
      expect(exit).toEqual({ code: 0, signal: null });
      expect(current.logTail(200)).toContain('released leader lease');
    }),
    60_000,
  );
});
