// Two operator processes (leader election on, their own TLS Secret) replace the injector CA on request while an
// admission goes to each replica every ~100 ms, verified against the caBundle the revision's webhook
// configuration carries at that moment: what kube-apiserver would trust, read as soon as it is written. Each step
// of the rotation (staged, promoted, retired) reaches the replicas at different times: the writer has it at once,
// the other through its watch or its next check (the leader checks slowly); not one admission may fail
// verification.
// A second test gives one operator hour-long checks: only its Secret watch and its rotation-step timers can make
// a requested CA replacement complete, and a deleted Secret come back, within the test's time.
import { X509Certificate } from 'node:crypto';

import { API_GROUP_VERSION } from '../../src/crds/constants.js';
import { ROTATION_ANNOTATIONS } from '../../src/injector/tls/certificates.js';
import type { KubeClient, Lease } from '../../src/runtime/kube.js';
import type { KubeObject } from '../../src/runtime/types.js';
import { uniqueName, waitFor } from '../support/kube.js';
import { ensureIstioSystemNamespace, installCrds, testClient } from '../support/operator.js';
import {
  podReview,
  sendAdmission,
  startProcessOperator,
  stopAllProcessOperators,
  withOperatorLogs,
  type ProcessOperator,
} from '../support/process-operator.js';

type WithConditions = KubeObject & { status?: { conditions?: { type: string; status: string }[] } };
type Mwc = KubeObject & { webhooks?: { clientConfig: { caBundle?: string } }[] };

const CPR = { apiVersion: API_GROUP_VERSION, kind: 'ControlPlaneRevision' };
const MWC = { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' };
const leaseName = uniqueName('meshrev-ca');
const secretName = uniqueName('meshrev-ca-tls');
const rev = uniqueName('ca-rot');
/** More than the leader's 4 s check interval plus applying the webhooks. */
const OVERLAP_SECONDS = 6;
/** The single operator of the second test: one lease, Secret and revision of its own. */
const watched = {
  lease: uniqueName('meshrev-watch'),
  secret: uniqueName('meshrev-watch-tls'),
  rev: uniqueName('tls-watch'),
};

let client: KubeClient;
const operators: ProcessOperator[] = [];

/** The PEM bundle the revision's injection webhook trusts now, or undefined before it exists. */
async function webhookBundle(revision = rev): Promise<string | undefined> {
  const mwc = await client.getOptional<Mwc>({ ...MWC, name: `istio-sidecar-injector-${revision}` });
  const encoded = mwc?.webhooks?.[0]?.clientConfig.caBundle;
  return encoded ? Buffer.from(encoded, 'base64').toString('utf8') : undefined;
}

function certificates(bundle: string): string[] {
  return bundle.match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
}

function fingerprints(bundle: string): string[] {
  return certificates(bundle).map((pem) => new X509Certificate(pem).fingerprint256);
}

function review(uid: string): string {
  return podReview(uid, 'default', {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: `pod-${uid}`, namespace: 'default' },
    spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
  });
}

function withLogs<T>(fn: () => Promise<T>): () => Promise<T> {
  return withOperatorLogs(operators, fn);
}

beforeAll(async () => {
  client = testClient();
  await installCrds(client);
  await ensureIstioSystemNamespace(client);
});

afterAll(async () => {
  await stopAllProcessOperators();
  for (const name of [rev, watched.rev]) await client.delete({ ...CPR, name }).catch(() => undefined);
  for (const [kind, name, apiVersion] of [
    ['Lease', leaseName, 'coordination.k8s.io/v1'],
    ['Secret', secretName, 'v1'],
    ['Lease', watched.lease, 'coordination.k8s.io/v1'],
    ['Secret', watched.secret, 'v1'],
  ] as const) {
    await client.delete({ apiVersion, kind, namespace: 'meshrev-system', name }).catch(() => undefined);
  }
  client?.close();
});

test(
  'replacing the CA with two replicas never leaves a replica serving a leaf the webhook caBundle distrusts',
  withLogs(async () => {
    // The leader (which applies the caBundle) re-reads the Secret slowly and the follower quickly, so the
    // follower usually takes each step of the rotation first: without the overlap it would serve a leaf of the
    // new CA before the leader had published it.
    for (const [name, checkSeconds] of [
      ['ca-slow-leader', 4],
      ['ca-fast-follower', 1],
    ] as const) {
      operators.push(
        await startProcessOperator(name, [
          '--leader-elect=true',
          `--lease-name=${leaseName}`,
          `--tls-secret=${secretName}`,
          `--tls-check-seconds=${checkSeconds}`,
          `--tls-ca-overlap-seconds=${OVERLAP_SECONDS}`,
          '--dev-webhook-routing=true',
          '--create-default-tag=false',
          '--resync-seconds=0',
        ]),
      );
      if (name === 'ca-slow-leader') {
        await waitFor(`${name} to lead`, async () => {
          const lease = await client.getOptional<Lease>({
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            namespace: 'meshrev-system',
            name: leaseName,
          });
          return lease?.spec?.holderIdentity === name;
        });
      }
    }
    await client.apply({ ...CPR, metadata: { name: rev }, spec: { version: '1.29.6' } } as KubeObject, {
      fieldManager: 'meshrev-tests',
      force: true,
    });
    await waitFor(`${rev} Reconciled=True`, async () => {
      const cpr = await client.getOptional<WithConditions>({ ...CPR, name: rev });
      return cpr?.status?.conditions?.some((c) => c.type === 'Reconciled' && c.status === 'True') ?? false;
    });
    const originalBundle = await waitFor('the webhook caBundle', webhookBundle);
    expect(certificates(originalBundle)).toHaveLength(1);
    for (const op of operators) {
      await waitFor(`${op.name} to inject for ${rev}`, async () => {
        const r = await sendAdmission(
          { port: op.injectorPort, path: `/inject/${rev}`, ca: originalBundle },
          review(`ready-${op.name}`),
        );
        return r.patched;
      });
    }

    // Probes: each round reads the bundle the webhook carries, then admits through every replica trusting it.
    const failures: string[] = [];
    const bundlesSeen = new Set<string>();
    let rounds = 0;
    let probing = true;
    const probe = (async () => {
      while (probing) {
        const bundle = (await webhookBundle()) ?? '';
        bundlesSeen.add(fingerprints(bundle).join(','));
        await Promise.all(
          operators.map(async (op) => {
            try {
              const r = await sendAdmission(
                { port: op.injectorPort, path: `/inject/${rev}`, ca: bundle },
                review(`probe-${op.name}-${rounds}`),
              );
              if (!r.patched) failures.push(`${op.name}: ${JSON.stringify(r)}`);
            } catch (err) {
              failures.push(`${op.name}: ${err instanceof Error ? err.message : String(err)}`);
            }
          }),
        );
        rounds += 1;
        // Pacing for the probes only (no test condition waits on it).
        await new Promise((r) => setTimeout(r, 100));
      }
    })();

    await client.patch(
      { apiVersion: 'v1', kind: 'Secret', namespace: 'meshrev-system', name: secretName },
      { metadata: { annotations: { [ROTATION_ANNOTATIONS.replaceCa]: 'integration test' } } },
      'application/merge-patch+json',
    );
    const [originalCa] = fingerprints(originalBundle);
    const newCa = await waitFor(
      'the webhook to trust a new CA alone',
      async () => {
        const prints = fingerprints((await webhookBundle()) ?? '');
        return prints.length === 1 && prints[0] !== originalCa ? prints[0] : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 200 },
    );
    // Both replicas serve a leaf of the new CA: verified with it alone.
    const newBundle = (await webhookBundle()) ?? '';
    for (const op of operators) {
      const r = await sendAdmission(
        { port: op.injectorPort, path: `/inject/${rev}`, ca: newBundle },
        review(`after-${op.name}`),
      );
      expect(r.patched).toBe(true);
    }
    // The probes read the bundle at the start of each round: let them meet the final one too.
    await waitFor('the probes to see the new CA alone', () => bundlesSeen.has(newCa));
    probing = false;
    await probe;

    console.log(
      `CA rotation across 2 replicas: ${rounds} probe rounds, ${bundlesSeen.size} distinct bundles, ` +
        `${failures.length} failures`,
    );
    expect(failures).toEqual([]);
    // The probes saw the overlap: the original CA and the new one trusted together (staged, then promoted).
    expect([...bundlesSeen]).toEqual(expect.arrayContaining([originalCa, `${originalCa},${newCa}`, newCa]));
    const secret = await client.get<KubeObject & { metadata: { annotations?: Record<string, string> } }>({
      apiVersion: 'v1',
      kind: 'Secret',
      namespace: 'meshrev-system',
      name: secretName,
    });
    expect(secret.metadata.annotations?.[ROTATION_ANNOTATIONS.replaceCa]).toBeUndefined();
  }),
  180_000,
);

type StoredSecret = KubeObject & { data?: Record<string, string> };

test(
  'a replica acts on its TLS Secret changing at once: a replace-ca request and a deleted Secret, with hour-long checks',
  withLogs(async () => {
    // The first test's leaders would write their own caBundle into this revision's webhook too.
    await stopAllProcessOperators();
    operators.splice(0);
    operators.push(
      await startProcessOperator('tls-watch', [
        '--leader-elect=true',
        `--lease-name=${watched.lease}`,
        `--tls-secret=${watched.secret}`,
        // Polling alone would notice nothing for an hour: what happens below is the watch and the step timers.
        '--tls-check-seconds=3600',
        '--tls-ca-overlap-seconds=2',
        '--dev-webhook-routing=true',
        '--create-default-tag=false',
        '--resync-seconds=0',
      ]),
    );
    const [op] = operators;
    if (op === undefined) throw new Error('no operator');
    const secretRef = { apiVersion: 'v1', kind: 'Secret', namespace: 'meshrev-system', name: watched.secret };
    await client.apply(
      { ...CPR, metadata: { name: watched.rev }, spec: { version: '1.29.6' } } as KubeObject,
      { fieldManager: 'meshrev-tests', force: true },
    );
    const originalBundle = await waitFor('the webhook caBundle', async () => {
      const bundle = await webhookBundle(watched.rev);
      return bundle !== undefined && certificates(bundle).length === 1 ? bundle : undefined;
    });
    const [originalCa] = fingerprints(originalBundle);

    const requestedAt = Date.now();
    await client.patch(
      secretRef,
      { metadata: { annotations: { [ROTATION_ANNOTATIONS.replaceCa]: 'integration test' } } },
      'application/merge-patch+json',
    );
    const newCa = await waitFor(
      'the webhook to trust a new CA alone',
      async () => {
        const prints = fingerprints((await webhookBundle(watched.rev)) ?? '');
        return prints.length === 1 && prints[0] !== originalCa ? prints[0] : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const replacedInMs = Date.now() - requestedAt;
    const newBundle = (await webhookBundle(watched.rev)) ?? '';
    const admitted = await sendAdmission(
      { port: op.injectorPort, path: `/inject/${watched.rev}`, ca: newBundle },
      review('after-replacement'),
    );
    expect(admitted.patched).toBe(true);

    const before = await client.get<StoredSecret>(secretRef);
    const deletedAt = Date.now();
    await client.delete(secretRef);
    const recreated = await waitFor(
      'the deleted Secret to be recreated',
      async () => {
        const secret = await client.getOptional<StoredSecret>(secretRef);
        return secret?.metadata?.uid !== before.metadata?.uid ? secret : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const recreatedInMs = Date.now() - deletedAt;
    console.log(
      `TLS Secret watch: CA replaced (2 s overlaps) in ${replacedInMs} ms, deleted Secret recreated in ` +
        `${recreatedInMs} ms, with --tls-check-seconds=3600`,
    );
    expect(newCa).not.toBe(originalCa);
    // Recreated from what the replica serves: the same CA and leaf, so no webhook loses trust.
    expect(recreated.data?.['ca.crt']).toBe(before.data?.['ca.crt']);
    expect(recreated.data?.['tls.crt']).toBe(before.data?.['tls.crt']);
  }),
  120_000,
);
