// The injector's certificates rotate while ~200 admissions per second flow through kube-apiserver
// (server-side dry-run pod creations still call mutating webhooks whose sideEffects are None): once a leaf
// reissue, once a replacement of the CA that can no longer sign (and with it every webhook's caBundle, which
// first trusts both CAs). Not one admission may fail, and afterwards the injector serves the reissued
// certificate.
import * as k8s from '@kubernetes/client-node';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect } from 'node:tls';

import {
  certificateValidity,
  injectorDnsNames,
  issueServingCertificate,
  SECRET_KEYS,
  type TlsSecret,
} from '../../../src/injector/tls/certificates.js';
import type { KubeClient } from '../../../src/runtime/kube.js';
import type { KubeObject } from '../../../src/runtime/types.js';
import { createTestNamespace, deleteNamespace, testKubeConfig, waitFor } from '../../support/kube.js';
import { installCrds, testClient } from '../../support/operator.js';
import {
  applyRevision,
  clusterState,
  CPR,
  metricValue,
  record,
  revisionName,
  startChildOperator,
  waitForReconciled,
  withDiagnostics,
  type ChildOperator,
} from './support.js';

const TARGET_RATE = 200; // admissions per second, across all loops
const LOOPS = Number(process.env.MESHREV_TEST_LOAD_LOOPS ?? 32);
const LOAD_BEFORE_ROTATION_MS = 3_000;
const LOAD_AFTER_ROTATION_MS = 3_000;
/** How long a new CA is trusted before it signs (and the old one after); the default is minutes. */
const CA_OVERLAP_SECONDS = 4;

let client: KubeClient;
let kc: k8s.KubeConfig;
let controlPlaneNamespace: string;
let workloadNamespace: string;
let operator: ChildOperator | undefined;
const created: string[] = [];

beforeAll(async () => {
  kc = testKubeConfig();
  client = testClient();
  await installCrds(client);
  controlPlaneNamespace = await createTestNamespace(kc, 'rs-cert-cp');
});

afterAll(async () => {
  await operator?.kill('SIGKILL');
  for (const name of created) await client.delete({ ...CPR, name }).catch(() => undefined);
  await deleteNamespace(kc, controlPlaneNamespace);
  if (workloadNamespace) await deleteNamespace(kc, workloadNamespace);
  client.close();
});

const logs = (): string => operator?.logTail(40) ?? '(no operator)';

function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false },
      () => {
        const fingerprint = socket.getPeerCertificate().fingerprint256;
        socket.destroy();
        resolve(fingerprint);
      },
    );
    socket.on('error', reject);
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timeout')));
  });
}

function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

interface DryRunResult {
  ok: boolean;
  detail?: string;
}

/** Creates a pod with dryRun=All through kube-apiserver (which calls the injector) and checks it was injected. */
function dryRunPod(
  server: string,
  agent: Agent,
  namespace: string,
  tls: { ca: Buffer; cert: Buffer; key: Buffer },
): Promise<DryRunResult> {
  const body = JSON.stringify({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'load-', labels: { app: 'load' } },
    spec: { containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
  });
  const url = new URL(`${server}/api/v1/namespaces/${namespace}/pods?dryRun=All`);
  return new Promise((resolve) => {
    const req = httpsRequest(
      {
        host: url.hostname,
        port: url.port,
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        agent,
        ...tls,
        timeout: 15_000,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          if (res.statusCode !== 201)
            return resolve({ ok: false, detail: `HTTP ${res.statusCode}: ${text.slice(0, 300)}` });
          // Depending on the version the sidecar is a container or a native (init) sidecar.
          const pod = JSON.parse(text) as {
            spec?: { containers?: { name: string }[]; initContainers?: { name: string }[] };
          };
          const all = [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? [])];
          const injected = all.some((c) => c.name === 'istio-proxy');
          resolve(injected ? { ok: true } : { ok: false, detail: 'admitted without a sidecar' });
        });
      },
    );
    req.on('error', (err) => resolve({ ok: false, detail: err.message }));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

interface Setup {
  server: string;
  tls: { ca: Buffer; cert: Buffer; key: Buffer };
  rev: string;
}
let setup: Setup | undefined;

/** One operator process (TLS Secret checked every second), one revision, one namespace selecting it. */
async function ensureSetup(): Promise<Setup> {
  if (setup) return setup;
  const state = clusterState();
  const pki = join(state.stateDir, 'pki');
  const tls = {
    ca: readFileSync(join(pki, 'ca.crt')),
    cert: readFileSync(join(pki, 'admin.crt')),
    key: readFileSync(join(pki, 'admin.key')),
  };
  operator = await startChildOperator('resilience-cert', [
    '--tls-check-seconds=1',
    `--tls-ca-overlap-seconds=${CA_OVERLAP_SECONDS}`,
    '--log-level=info',
  ]);
  const rev = revisionName('cert');
  created.push(rev);
  await applyRevision(client, rev, { version: '1.29.6', namespace: controlPlaneNamespace });
  await waitForReconciled(client, rev);
  workloadNamespace = await createTestNamespace(kc, 'rs-cert-apps', { 'istio.io/rev': rev });
  setup = { server: state.server, tls, rev };
  return setup;
}

const SECRET_REF = {
  apiVersion: 'v1',
  kind: 'Secret',
  namespace: 'meshrev-system',
  name: 'meshrev-injector-tls',
};
const decodeKey = (secret: TlsSecret, key: string): string =>
  Buffer.from(secret.data?.[key] ?? '', 'base64').toString('utf8');

/**
 * Rewrites the Secret so the operator must rotate: a leaf (same CA) expiring in ten minutes, which it reissues,
 * or additionally a CA without its key, which makes it stage a new CA in every webhook's caBundle, let it sign
 * after the overlap, and drop the old one after another.
 */
async function forceRotation(secret: TlsSecret & KubeObject, regenerateCa: boolean): Promise<string> {
  const shortLived = await issueServingCertificate({
    ca: { certPem: decodeKey(secret, SECRET_KEYS.caCert), keyPem: decodeKey(secret, SECRET_KEYS.caKey) },
    now: new Date(),
    dnsNames: [...injectorDnsNames('meshrev-injector', 'meshrev-system'), 'localhost'],
    ipAddresses: ['127.0.0.1'],
    validityMs: 10 * 60 * 1000,
  });
  await client.update({
    ...secret,
    data: {
      ...secret.data,
      [SECRET_KEYS.cert]: Buffer.from(shortLived.certPem).toString('base64'),
      [SECRET_KEYS.key]: Buffer.from(shortLived.keyPem).toString('base64'),
      ...(regenerateCa ? { [SECRET_KEYS.caKey]: '' } : {}),
    },
  } as KubeObject);
  return fingerprintOf(shortLived.certPem);
}

test.each([
  ['the serving certificate is reissued', false],
  ['the CA is replaced', true],
] as const)(
  'when %s under 200 admissions per second, no admission fails',
  (what, regenerateCa) =>
    withDiagnostics(logs, async () => {
      const { server, tls, rev } = await ensureSetup();
      const port = operator?.injectorPort ?? 0;
      const agent = new Agent({ keepAlive: true, maxSockets: LOOPS });
      await waitFor(
        'a dry-run pod to be injected',
        async () => {
          const result = await dryRunPod(server, agent, workloadNamespace, tls);
          if (!result.ok) throw new Error(result.detail);
          return true;
        },
        { timeoutMs: 30_000 },
      );
      const before = await servedFingerprint(port);

      // Paced load: slot i is due at start + i / rate, whichever loop takes it.
      let nextSlot = 0;
      const failures: string[] = [];
      let sent = 0;
      const start = Date.now();
      const stopLoad = { at: Number.POSITIVE_INFINITY };
      const loop = async (): Promise<void> => {
        for (;;) {
          if (Date.now() >= stopLoad.at) return;
          const due = start + (nextSlot++ * 1000) / TARGET_RATE;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          const result = await dryRunPod(server, agent, workloadNamespace, tls);
          sent += 1;
          if (!result.ok) failures.push(result.detail ?? 'failed');
        }
      };
      const loops = Array.from({ length: LOOPS }, loop);

      await new Promise((r) => setTimeout(r, LOAD_BEFORE_ROTATION_MS));
      const secret = await client.get<TlsSecret & KubeObject>(SECRET_REF);
      const shortLivedFingerprint = await forceRotation(secret, regenerateCa);
      const rotatedAt = Date.now();
      const revisionWebhookBundles = async (): Promise<string[]> => {
        const { items } = await client.listAll<
          KubeObject & { webhooks?: { clientConfig: { caBundle?: string } }[] }
        >(
          { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration' },
          { labelSelector: `istio.io/rev=${rev}` },
        );
        return items.flatMap((mwc) => (mwc.webhooks ?? []).map((w) => w.clientConfig.caBundle ?? ''));
      };
      const certificatesIn = (bundle: string): number =>
        Buffer.from(bundle, 'base64').toString('utf8').split('BEGIN CERTIFICATE').length - 1;
      if (regenerateCa) {
        // Before the new CA signs anything, every webhook trusts it beside the old one.
        await waitFor(
          'the webhook configurations to trust the staged CA beside the current one',
          async () => {
            const bundles = await revisionWebhookBundles();
            return bundles.length > 0 && bundles.every((b) => certificatesIn(b) === 2);
          },
          { timeoutMs: 30_000, intervalMs: 100 },
        );
        expect(await servedFingerprint(port)).toBe(shortLivedFingerprint);
      }
      const after = await waitFor(
        'the injector to serve a reissued certificate',
        async () => {
          const served = await servedFingerprint(port);
          return served !== before && served !== shortLivedFingerprint ? served : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 200 },
      );
      const rotationMs = Date.now() - rotatedAt;
      const stored = await client.get<TlsSecret & KubeObject>(SECRET_REF);
      const newCa = stored.data?.[SECRET_KEYS.caCert] ?? '';
      if (regenerateCa) {
        // After the overlap every webhook configuration of the revision trusts the new CA alone.
        await waitFor(
          'the webhook configurations to carry only the new CA',
          async () => {
            const bundles = await revisionWebhookBundles();
            return bundles.length > 0 && bundles.every((b) => b === newCa);
          },
          { timeoutMs: 30_000 },
        );
      }
      await new Promise((r) => setTimeout(r, LOAD_AFTER_ROTATION_MS));
      stopLoad.at = Date.now();
      await Promise.all(loops);
      const elapsedS = (Date.now() - start) / 1000;
      agent.destroy();

      // The Secret holds what is served, valid for the usual year; a leaf reissue keeps the CA.
      const storedPem = decodeKey(stored, SECRET_KEYS.cert);
      expect(fingerprintOf(storedPem)).toBe(after);
      if (regenerateCa) expect(newCa).not.toBe(secret.data?.[SECRET_KEYS.caCert]);
      else expect(newCa).toBe(secret.data?.[SECRET_KEYS.caCert]);
      expect((certificateValidity(storedPem)?.notAfter.getTime() ?? 0) - Date.now()).toBeGreaterThan(
        24 * 3600 * 1000,
      );

      const metrics = (await operator?.metrics()) ?? '';
      record(`certificate rotation under load (${what})`, {
        admissions: sent,
        failed: failures.length,
        achievedPerSecond: Math.round(sent / elapsedS),
        targetPerSecond: TARGET_RATE,
        loops: LOOPS,
        rotationVisibleAfterMs: rotationMs,
        injectorInjectedTotal: metricValue(metrics, 'sidecar_injection_success_total'),
        firstFailures: failures.slice(0, 3),
      });
      expect(failures).toEqual([]);
      expect(sent).toBeGreaterThan(0);
    })(),
  120_000,
);
