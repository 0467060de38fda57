// The AdmissionReview v1 payloads of the injection benchmark, built deterministically so the load generator
// (a child process) and the server side agree on them without shipping megabytes over IPC.
import { DEFAULT_INJECTION_CACHE_LIMITS } from '../src/injector/cache.js';

export type PayloadName = 'small' | 'realistic' | 'env2000' | 'mib';

export const PAYLOAD_NAMES: readonly PayloadName[] = ['small', 'realistic', 'env2000', 'mib'];

/** More distinct pods than the verdict cache keeps or remembers, cycled in order, so every request misses it. */
export const DISTINCT_PODS = 4 * DEFAULT_INJECTION_CACHE_LIMITS.maxEntries;
/** Replicas cycled per payload (each with its own token volume name); few for the large ones, to bound memory. */
export const REPLICA_VARIANTS: Record<PayloadName, number> = {
  small: 1024,
  realistic: 1024,
  env2000: 16,
  mib: 4,
};

/** The soak's mix of pods (injection suite) and the scale suite's open-loop burst: mostly small pods, a few large. */
export const SOAK_MIX: ReadonlyArray<{ name: PayloadName; weight: number }> = [
  { name: 'small', weight: 16 },
  { name: 'realistic', weight: 3 },
  { name: 'env2000', weight: 1 },
];

export const PAYLOAD_TITLES: Record<PayloadName, string> = {
  small: 'small pod (1 container)',
  realistic: 'realistic pod (5 containers, probes)',
  env2000: '2,000-env-var pod',
  mib: '~1 MiB pod',
};

type Obj = Record<string, unknown>;

function review(pod: Obj, uid: string): Obj {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'bench',
      operation: 'CREATE',
      userInfo: {
        username: 'system:serviceaccount:kube-system:replicaset-controller',
        uid: '0f0e0d0c-0b0a-0908-0706-050403020100',
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      },
      object: pod,
      oldObject: null,
      dryRun: false,
      options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1' },
    },
  };
}

function podMeta(name: string, extraLabels: Obj = {}, annotations: Obj = {}): Obj {
  return {
    generateName: `${name}-7d9f8b6c5d-`,
    namespace: 'bench',
    labels: { app: name, version: 'v1', 'pod-template-hash': '7d9f8b6c5d', ...extraLabels },
    annotations,
    ownerReferences: [
      {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        name: `${name}-7d9f8b6c5d`,
        uid: '6a1f3c2e-8a47-4b1f-9d5e-2f3c4b5a6d7e',
        controller: true,
        blockOwnerDeletion: true,
      },
    ],
    managedFields: [
      {
        manager: 'kube-controller-manager',
        operation: 'Update',
        apiVersion: 'v1',
        time: '2025-01-01T00:00:00Z',
        fieldsType: 'FieldsV1',
        fieldsV1: { 'f:metadata': { 'f:generateName': {}, 'f:labels': { '.': {}, 'f:app': {} } } },
      },
    ],
  };
}

const TOKEN_VOLUME = {
  name: 'kube-api-access-x7k2p',
  projected: {
    defaultMode: 420,
    sources: [
      { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
      { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
      {
        downwardAPI: {
          items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
        },
      },
    ],
  },
};
const TOKEN_MOUNT = {
  name: 'kube-api-access-x7k2p',
  readOnly: true,
  mountPath: '/var/run/secrets/kubernetes.io/serviceaccount',
};

function podSpec(containers: Obj[], extra: Obj = {}): Obj {
  return {
    containers,
    volumes: [TOKEN_VOLUME],
    restartPolicy: 'Always',
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    serviceAccountName: 'default',
    serviceAccount: 'default',
    securityContext: {},
    schedulerName: 'default-scheduler',
    enableServiceLinks: true,
    preemptionPolicy: 'PreemptLowerPriority',
    priority: 0,
    tolerations: [
      {
        key: 'node.kubernetes.io/not-ready',
        operator: 'Exists',
        effect: 'NoExecute',
        tolerationSeconds: 300,
      },
      {
        key: 'node.kubernetes.io/unreachable',
        operator: 'Exists',
        effect: 'NoExecute',
        tolerationSeconds: 300,
      },
    ],
    ...extra,
  };
}

function container(name: string, image: string, extra: Obj = {}): Obj {
  return {
    name,
    image,
    imagePullPolicy: 'IfNotPresent',
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
    volumeMounts: [TOKEN_MOUNT],
    ...extra,
  };
}

function env(count: number, valueLength: number, prefix = 'SETTING'): Obj[] {
  const out: Obj[] = [];
  for (let i = 0; i < count; i += 1) {
    const value = `value-${i}-`.padEnd(valueLength, 'x');
    out.push({ name: `${prefix}_${String(i).padStart(5, '0')}`, value });
  }
  return out;
}

function smallPod(): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: podMeta('web'),
    spec: podSpec([container('web', 'nginx:1.27', { ports: [{ containerPort: 80, protocol: 'TCP' }] })]),
  };
}

function realisticPod(): Obj {
  const httpProbe = (path: string, port: string | number, period: number): Obj => ({
    httpGet: { path, port, scheme: 'HTTP' },
    initialDelaySeconds: 5,
    periodSeconds: period,
    timeoutSeconds: 1,
    successThreshold: 1,
    failureThreshold: 3,
  });
  const containers = [
    container('app', 'registry.example.com/shop/app:2.14.1', {
      ports: [
        { name: 'http', containerPort: 8080, protocol: 'TCP' },
        { name: 'admin', containerPort: 9901, protocol: 'TCP' },
      ],
      env: [
        ...env(12, 24, 'APP'),
        { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
        { name: 'DB_PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
      ],
      readinessProbe: httpProbe('/ready', 'http', 5),
      livenessProbe: httpProbe('/healthz', 'admin', 10),
      startupProbe: httpProbe('/started', 8080, 2),
      lifecycle: { preStop: { httpGet: { path: '/drain', port: 'admin' } } },
    }),
    container('grpc', 'registry.example.com/shop/grpc:2.14.1', {
      ports: [{ name: 'grpc', containerPort: 50051, protocol: 'TCP' }],
      env: env(6, 20, 'GRPC'),
      readinessProbe: { grpc: { port: 50051 }, periodSeconds: 5 },
      livenessProbe: { grpc: { port: 50051, service: 'liveness' }, periodSeconds: 10 },
    }),
    container('cache', 'redis:7.4', {
      ports: [{ name: 'redis', containerPort: 6379, protocol: 'TCP' }],
      readinessProbe: { tcpSocket: { port: 'redis' }, periodSeconds: 5 },
      livenessProbe: { exec: { command: ['redis-cli', 'ping'] }, periodSeconds: 10 },
    }),
    container('metrics', 'prom/statsd-exporter:v0.27.1', {
      ports: [{ name: 'metrics', containerPort: 9102, protocol: 'TCP' }],
      readinessProbe: httpProbe('/metrics', 'metrics', 15),
    }),
    container('log-shipper', 'fluent/fluent-bit:3.1', {
      env: env(4, 16, 'FLB'),
      volumeMounts: [TOKEN_MOUNT, { name: 'logs', mountPath: '/var/log/app' }],
      livenessProbe: { httpGet: { path: '/api/v1/health', port: 2020 }, periodSeconds: 10 },
    }),
  ];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: podMeta(
      'shop',
      { tier: 'backend', team: 'payments' },
      { 'prometheus.io/scrape': 'true', 'prometheus.io/port': '9102', 'prometheus.io/path': '/metrics' },
    ),
    spec: podSpec(containers, {
      initContainers: [
        container('migrate', 'registry.example.com/shop/migrate:2.14.1', { env: env(3, 20, 'MIG') }),
      ],
      volumes: [TOKEN_VOLUME, { name: 'logs', emptyDir: {} }],
      affinity: {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 100,
              podAffinityTerm: {
                labelSelector: { matchLabels: { app: 'shop' } },
                topologyKey: 'kubernetes.io/hostname',
              },
            },
          ],
        },
      },
    }),
  };
}

function env2000Pod(): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: podMeta('legacy'),
    spec: podSpec([
      container('legacy', 'registry.example.com/legacy/app:9.0', {
        ports: [{ name: 'http', containerPort: 8080 }],
        env: env(2000, 32, 'LEGACY'),
        readinessProbe: { httpGet: { path: '/ready', port: 'http' }, periodSeconds: 5 },
      }),
    ]),
  };
}

/** Eight containers with long env values: about 1 MiB of JSON, under the 6 MiB admission limit. */
function mibPod(): Obj {
  const containers: Obj[] = [];
  for (let c = 0; c < 8; c += 1) {
    containers.push(
      container(`c${c}`, `registry.example.com/big/c${c}:1.0`, {
        ports: [{ name: `http-${c}`, containerPort: 8080 + c }],
        env: env(250, 480, `C${c}`),
        readinessProbe: { httpGet: { path: '/ready', port: `http-${c}` }, periodSeconds: 5 },
      }),
    );
  }
  return { apiVersion: 'v1', kind: 'Pod', metadata: podMeta('big'), spec: podSpec(containers) };
}

const builders: Record<PayloadName, () => Obj> = {
  small: smallPod,
  realistic: realisticPod,
  env2000: env2000Pod,
  mib: mibPod,
};

/** How the pods of a run differ from request to request. */
export type PodVariety = 'replicas' | 'distinct';

const TOKEN_NAME = TOKEN_VOLUME.name;
/** The characters Kubernetes' rand.String draws from (no vowels, no look-alikes). */
const RAND_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/** A deterministic stand-in for the 5 random characters kube-apiserver appends to the token volume's name. */
function tokenSuffix(i: number): string {
  let out = '';
  let n = i * 7919 + 104729;
  for (let k = 0; k < 5; k++) {
    out += RAND_ALPHABET[n % RAND_ALPHABET.length];
    n = Math.floor(n / RAND_ALPHABET.length) + k * 31;
  }
  return out;
}

/**
 * The payload as one review. Its pod is what a ReplicaSet's pod looks like at admission: `generateName` set, no
 * name yet, and a service-account token volume `kube-api-access-<5 random characters>` added by kube-apiserver's
 * ServiceAccount plugin before any webhook runs.
 */
export function payloadBody(name: PayloadName): Buffer {
  return Buffer.from(
    JSON.stringify(review(builders[name](), `bench-${name}-0000-0000-000000000000`)),
    'utf8',
  );
}

/**
 * `count` reviews of the payload. `replicas`: the pods of one ReplicaSet, identical but for the token volume's
 * random suffix (and the request uid), as a Deployment's scale-up or rollout sends them. `distinct`: each pod is the
 * first of its own Deployment's ReplicaSet (its own generateName and owner, hence its own workload name), so no two
 * pods in a cycle share an injection result. They stay unnamed on purpose: the injector keys such pods in its verdict
 * cache, and named pods (a StatefulSet's, bare ones) skip it, so this is the costlier kind of pod that never repeats.
 */
export function payloadVariants(name: PayloadName, variety: PodVariety, count: number): Buffer[] {
  const bodies: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const pod = builders[name]();
    let target: Obj = pod;
    if (variety === 'distinct') {
      const metadata = pod.metadata as Obj;
      const owners = metadata.ownerReferences as Obj[];
      const replicaSet = `${name}-${i}-7d9f8b6c5d`;
      target = {
        ...pod,
        metadata: {
          ...metadata,
          generateName: `${replicaSet}-`,
          ownerReferences: owners.map((owner) => ({ ...owner, name: replicaSet })),
        },
      };
    }
    const uid = `bench-${name}-${String(i).padStart(4, '0')}-0000-000000000000`;
    const json = JSON.stringify(review(target, uid)).replaceAll(
      TOKEN_NAME,
      `kube-api-access-${tokenSuffix(i)}`,
    );
    bodies.push(Buffer.from(json, 'utf8'));
  }
  return bodies;
}
