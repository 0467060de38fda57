// Pure certificate functions for the injector's webhook TLS: a private CA (10 years) and a serving leaf
// (1 year) signed by it, plus the checks that decide when to reissue.
//
// Key type: ECDSA P-256 with SHA-256. kube-apiserver (Go crypto/tls) and every TLS 1.2+ client verify it;
// key generation takes about a millisecond instead of the tens-to-hundreds of milliseconds of RSA 2048 (it runs
// on the operator's startup path and in every test), and handshakes and Secrets are smaller. Keys are PKCS#8 PEM.
import {
  X509Certificate as NodeX509Certificate,
  createPrivateKey,
  randomBytes,
  webcrypto,
} from 'node:crypto';
import type * as X509Module from '@peculiar/x509';
import { installReflectMetadataShim } from './reflect-metadata-shim.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type SigningAlgorithm = webcrypto.Algorithm | webcrypto.EcdsaParams;

const DAY_MS = 24 * 60 * 60 * 1000;
export const CA_VALIDITY_MS = 3650 * DAY_MS;
export const SERVING_VALIDITY_MS = 365 * DAY_MS;
/** The absolute floor of {@link needsRotation}: a leaf is replaced once less than this remains. */
export const DEFAULT_RENEW_BEFORE_MS = 30 * DAY_MS;
/** Certificates start this far in the past so replicas or API servers with a slow clock accept them at once. */
const BACKDATE_MS = 60 * 60 * 1000;
/**
 * A leaf ending this close to its CA ends with it: certificate times have whole-second precision, and a reissue
 * could gain no more than the gap.
 */
const CA_BOUND_TOLERANCE_MS = 60 * 1000;

const EC_KEY = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const EC_SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

/**
 * A CA rotation in progress. Webhook configurations trust a bundle, not one CA, so the CA can change without a
 * moment in which kube-apiserver (which sees the bundle the leader last applied) distrusts the leaf some replica
 * serves: a successor is first published beside the current CA (`next`) while every replica keeps serving leaves
 * of the current one; only after an overlap does it sign, and the CA it replaced stays in the bundle (`previous`)
 * for another overlap, until every replica has picked up a leaf of the new CA.
 */
export interface CaRotation {
  /** The successor CA, trusted but not yet signing, and when it was staged (undefined: time unknown). */
  next?: KeyPairPem & { since: Date | undefined };
  /** The CA that signed before the last change, still trusted, and since when (undefined: time unknown). */
  previous?: { certPem: string; since: Date | undefined };
}

/**
 * Everything the injector's Secret holds: the CA that signs (cert + key, so any replica can sign), the serving
 * pair, and any CA rotation in progress.
 */
export interface TlsMaterial {
  caCertPem: string;
  caKeyPem: string;
  certPem: string;
  keyPem: string;
  rotation?: CaRotation;
}

export const SECRET_KEYS = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  cert: 'tls.crt',
  key: 'tls.key',
  nextCaCert: 'next-ca.crt',
  nextCaKey: 'next-ca.key',
  previousCaCert: 'previous-ca.crt',
} as const;

/**
 * When each half of a CA rotation began (RFC 3339), kept beside the certificates they time, and the request a
 * person makes to replace the CA (any value; meshrev stages a new CA and removes the annotation).
 */
export const ROTATION_ANNOTATIONS = {
  nextStagedAt: 'meshrev.dev/next-ca-staged-at',
  previousRetiredAt: 'meshrev.dev/previous-ca-retired-at',
  replaceCa: 'meshrev.dev/replace-ca',
} as const;

/** The Secret as meshrev reads and writes it; a client-node V1Secret with name and namespace fits it. */
export interface TlsSecret {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    /** Whatever else the stored Secret carries (owner references, finalizers, …), kept through an update. */
    [field: string]: unknown;
  };
  type?: string;
  /** Base64-encoded values, as in the Kubernetes API. */
  data?: Record<string, string>;
}

let x509Module: Promise<typeof X509Module> | undefined;

/**
 * @peculiar/x509 loads tsyringe, which throws at load time unless `Reflect.getMetadata` exists. A static import
 * cannot guarantee the shim runs first (loaders may evaluate CommonJS dependencies while linking), so the library
 * is imported lazily, after the shim is installed.
 */
function loadX509(): Promise<typeof X509Module> {
  installReflectMetadataShim();
  x509Module ??= import('@peculiar/x509');
  return x509Module;
}

function toPem(der: ArrayBuffer, label: string): string {
  const body = Buffer.from(der)
    .toString('base64')
    .replace(/.{1,64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}

function randomSerialNumber(): string {
  const bytes = randomBytes(16);
  // A positive INTEGER without a leading zero octet: clear the sign bit, keep the first octet non-zero.
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x01;
  return bytes.toString('hex');
}

async function generateEcKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']);
}

async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return toPem(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** Imports a CA key for signing; ECDSA P-256/P-384 and RSA keys are accepted so a user-provided CA also works. */
async function importSigningKey(keyPem: string): Promise<{ key: CryptoKey; algorithm: SigningAlgorithm }> {
  const keyObject = createPrivateKey(keyPem);
  const pkcs8 = keyObject.export({ type: 'pkcs8', format: 'der' });
  if (keyObject.asymmetricKeyType === 'ec') {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (namedCurve === undefined) throw new Error(`unsupported CA key curve ${String(curve)}`);
    const hash = namedCurve === 'P-256' ? 'SHA-256' : 'SHA-384';
    const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, { name: 'ECDSA', namedCurve }, false, [
      'sign',
    ]);
    return { key, algorithm: { name: 'ECDSA', hash } satisfies webcrypto.EcdsaParams };
  }
  if (keyObject.asymmetricKeyType === 'rsa') {
    const algorithm = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
    const key = await webcrypto.subtle.importKey('pkcs8', pkcs8, algorithm, false, ['sign']);
    return { key, algorithm };
  }
  throw new Error(`unsupported CA key type ${String(keyObject.asymmetricKeyType)}`);
}

export interface CertificateAuthorityOptions {
  now: Date;
  validityMs?: number;
  commonName?: string;
}

export async function generateCertificateAuthority(
  options: CertificateAuthorityOptions,
): Promise<KeyPairPem> {
  const { now, validityMs = CA_VALIDITY_MS, commonName = 'meshrev-injector-ca' } = options;
  const x509 = await loadX509();
  const keys = await generateEcKeyPair();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerialNumber(),
      name: `CN=${commonName}, O=meshrev`,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + validityMs),
      signingAlgorithm: EC_SIGNING,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return { certPem: certificate.toString('pem') + '\n', keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

/** The DNS names kube-apiserver may use for a Service-backed webhook (it dials `<service>.<namespace>.svc`). */
export function injectorDnsNames(
  serviceName: string,
  namespace: string,
  clusterDomain = 'cluster.local',
): string[] {
  return [
    serviceName,
    `${serviceName}.${namespace}`,
    `${serviceName}.${namespace}.svc`,
    `${serviceName}.${namespace}.svc.${clusterDomain}`,
  ];
}

export interface ServingCertificateOptions {
  ca: KeyPairPem;
  now: Date;
  dnsNames: string[];
  ipAddresses?: string[];
  validityMs?: number;
}

/** Issues the serving leaf. Its lifetime never extends past the CA's, which would make the tail unverifiable. */
export async function issueServingCertificate(options: ServingCertificateOptions): Promise<KeyPairPem> {
  const { ca, now, dnsNames, ipAddresses = [], validityMs = SERVING_VALIDITY_MS } = options;
  if (dnsNames.length === 0) throw new Error('a serving certificate needs at least one DNS name');
  const x509 = await loadX509();
  const caCertificate = new x509.X509Certificate(ca.certPem);
  const signer = await importSigningKey(ca.keyPem);
  const keys = await generateEcKeyPair();
  const notAfter = Math.min(now.getTime() + validityMs, caCertificate.notAfter.getTime());
  const certificate = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerialNumber(),
      subject: `CN=${dnsNames.find((name) => name.includes('.svc')) ?? dnsNames[0]}`,
      issuer: caCertificate.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(notAfter),
      signingAlgorithm: signer.algorithm,
      publicKey: keys.publicKey,
      signingKey: signer.key,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension([
          ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
          ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
        ]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, webcrypto),
        await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return { certPem: certificate.toString('pem') + '\n', keyPem: await exportPrivateKeyPem(keys.privateKey) };
}

export function certificateValidity(certPem: string): { notBefore: Date; notAfter: Date } | undefined {
  try {
    const certificate = new NodeX509Certificate(certPem);
    return { notBefore: certificate.validFromDate, notAfter: certificate.validToDate };
  } catch {
    return undefined;
  }
}

/**
 * True when the certificate should be replaced now: less than a third of its lifetime or less than `renewBeforeMs`
 * (30 days by default) remains, it is not valid yet, or it cannot be parsed. A third of a year is about four
 * months, so a healthy installation reissues well before the 30-day floor ever matters.
 */
export function needsRotation(certPem: string, now: Date, renewBeforeMs = DEFAULT_RENEW_BEFORE_MS): boolean {
  const validity = certificateValidity(certPem);
  if (validity === undefined) return true;
  const lifetime = validity.notAfter.getTime() - validity.notBefore.getTime();
  const remaining = validity.notAfter.getTime() - now.getTime();
  if (now.getTime() < validity.notBefore.getTime()) return true;
  return remaining < lifetime / 3 || remaining < renewBeforeMs;
}

export interface MaterialExpectations {
  now: Date;
  dnsNames: string[];
  ipAddresses?: string[];
}

/** Why the CA half of the material cannot be used to sign (undefined when it can). */
export function caProblem(ca: KeyPairPem, now: Date): string | undefined {
  try {
    const certificate = new NodeX509Certificate(ca.certPem);
    if (!certificate.ca) return 'ca.crt is not a CA certificate';
    if (!certificate.checkPrivateKey(createPrivateKey(ca.keyPem))) return 'ca.key does not match ca.crt';
    if (certificate.validToDate.getTime() <= now.getTime()) return 'the CA certificate has expired';
    return undefined;
  } catch (error) {
    return `the CA cannot be read: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * Why the serving pair cannot be served at all (undefined when it can): it must parse, match its key, chain to
 * the stored CA (signature checked), be within its validity and the CA's, and cover every expected name.
 */
export function leafProblem(
  material: Pick<TlsMaterial, 'caCertPem' | 'certPem' | 'keyPem'>,
  expectations: MaterialExpectations,
): string | undefined {
  try {
    const ca = new NodeX509Certificate(material.caCertPem);
    const leaf = new NodeX509Certificate(material.certPem);
    if (!leaf.checkPrivateKey(createPrivateKey(material.keyPem))) return 'tls.key does not match tls.crt';
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) return 'tls.crt is not signed by ca.crt';
    for (const name of expectations.dnsNames) {
      if (leaf.checkHost(name, { wildcards: false }) !== name)
        return `tls.crt does not cover DNS name ${name}`;
    }
    for (const ip of expectations.ipAddresses ?? []) {
      if (leaf.checkIP(ip) === undefined) return `tls.crt does not cover IP address ${ip}`;
    }
    const now = expectations.now.getTime();
    if (leaf.validToDate.getTime() <= now || leaf.validFromDate.getTime() > now)
      return 'tls.crt is outside its validity';
    if (ca.validToDate.getTime() <= now) return 'the CA certificate has expired';
    return undefined;
  } catch (error) {
    return `the serving certificate cannot be read: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * Why the serving half cannot be kept (undefined when it can): {@link leafProblem}, or it is due for rotation and
 * a reissue under the same CA would outlast it. A leaf that already ends with its CA is kept however little is
 * left: its replacement would end at the same moment, due again at once, so every pass would rewrite the Secret
 * (and wake every replica) until a new CA signs, which the manager stages once the CA ages.
 */
export function servingProblem(
  material: Pick<TlsMaterial, 'caCertPem' | 'certPem' | 'keyPem'>,
  expectations: MaterialExpectations,
  renewBeforeMs = DEFAULT_RENEW_BEFORE_MS,
): string | undefined {
  const problem = leafProblem(material, expectations);
  if (problem !== undefined) return problem;
  if (!needsRotation(material.certPem, expectations.now, renewBeforeMs)) return undefined;
  return endsWithItsCa(material) ? undefined : 'tls.crt is due for rotation';
}

function endsWithItsCa(material: Pick<TlsMaterial, 'caCertPem' | 'certPem'>): boolean {
  const leafNotAfter = certificateValidity(material.certPem)?.notAfter.getTime();
  const caNotAfter = certificateValidity(material.caCertPem)?.notAfter.getTime();
  if (leafNotAfter === undefined || caNotAfter === undefined) return false;
  return caNotAfter - leafNotAfter <= CA_BOUND_TOLERANCE_MS;
}

function decodeBase64(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  return Buffer.from(value, 'base64').toString('utf8');
}

/**
 * The PEM values from the Secret, or undefined when any of the four current ones is missing (contents are not
 * validated here). A rotation half with its certificate missing is left out; an unreadable time is undefined.
 */
export function materialFromSecret(
  secret: Pick<TlsSecret, 'data'> & { metadata?: TlsSecret['metadata'] },
): TlsMaterial | undefined {
  const data = secret.data ?? {};
  const caCertPem = decodeBase64(data[SECRET_KEYS.caCert]);
  const caKeyPem = decodeBase64(data[SECRET_KEYS.caKey]);
  const certPem = decodeBase64(data[SECRET_KEYS.cert]);
  const keyPem = decodeBase64(data[SECRET_KEYS.key]);
  if (caCertPem === undefined || caKeyPem === undefined || certPem === undefined || keyPem === undefined) {
    return undefined;
  }
  const rotation = rotationFromSecret(secret);
  return { caCertPem, caKeyPem, certPem, keyPem, ...(rotation === undefined ? {} : { rotation }) };
}

function parseTime(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms);
}

export function rotationFromSecret(
  secret: Pick<TlsSecret, 'data'> & { metadata?: TlsSecret['metadata'] },
): CaRotation | undefined {
  const data = secret.data ?? {};
  const annotations = secret.metadata?.annotations ?? {};
  const nextCertPem = decodeBase64(data[SECRET_KEYS.nextCaCert]);
  const nextKeyPem = decodeBase64(data[SECRET_KEYS.nextCaKey]);
  const previousCertPem = decodeBase64(data[SECRET_KEYS.previousCaCert]);
  const rotation: CaRotation = {};
  if (nextCertPem !== undefined) {
    rotation.next = {
      certPem: nextCertPem,
      keyPem: nextKeyPem ?? '',
      since: parseTime(annotations[ROTATION_ANNOTATIONS.nextStagedAt]),
    };
  }
  if (previousCertPem !== undefined) {
    rotation.previous = {
      certPem: previousCertPem,
      since: parseTime(annotations[ROTATION_ANNOTATIONS.previousRetiredAt]),
    };
  }
  return rotation.next === undefined && rotation.previous === undefined ? undefined : rotation;
}

/**
 * The Secret for the material. Rotation times become annotations (`annotations` are the ones to keep; meshrev's
 * rotation annotations among them are replaced, a replace-ca request dropped); an undefined time is `stampedAt`.
 */
export function secretFromMaterial(
  material: TlsMaterial,
  metadata: TlsSecret['metadata'],
  stampedAt: Date = new Date(),
): TlsSecret {
  const encode = (pem: string) => Buffer.from(pem, 'utf8').toString('base64');
  const { next, previous } = material.rotation ?? {};
  const annotations: Record<string, string> = { ...metadata.annotations };
  for (const key of Object.values(ROTATION_ANNOTATIONS)) delete annotations[key];
  if (next !== undefined)
    annotations[ROTATION_ANNOTATIONS.nextStagedAt] = (next.since ?? stampedAt).toISOString();
  if (previous !== undefined)
    annotations[ROTATION_ANNOTATIONS.previousRetiredAt] = (previous.since ?? stampedAt).toISOString();
  const { annotations: _given, ...rest } = metadata;
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { ...rest, ...(Object.keys(annotations).length > 0 ? { annotations } : {}) },
    type: 'kubernetes.io/tls',
    data: {
      [SECRET_KEYS.caCert]: encode(material.caCertPem),
      [SECRET_KEYS.caKey]: encode(material.caKeyPem),
      [SECRET_KEYS.cert]: encode(material.certPem),
      [SECRET_KEYS.key]: encode(material.keyPem),
      ...(next === undefined
        ? {}
        : { [SECRET_KEYS.nextCaCert]: encode(next.certPem), [SECRET_KEYS.nextCaKey]: encode(next.keyPem) }),
      ...(previous === undefined ? {} : { [SECRET_KEYS.previousCaCert]: encode(previous.certPem) }),
    },
  };
}

/** The CA certificate PEM (the one that signs) from the Secret, or undefined if the Secret has none. */
export function caCertFromSecret(secret: Pick<TlsSecret, 'data'>): string | undefined {
  return decodeBase64(secret.data?.[SECRET_KEYS.caCert]);
}

/**
 * The CAs webhook configurations must trust, as one PEM bundle: the signing CA, then a staged successor, then the
 * retired predecessor (each while its rotation half lasts).
 */
export function trustBundlePem(material: Pick<TlsMaterial, 'caCertPem' | 'rotation'>): string {
  const pems = [material.caCertPem, material.rotation?.next?.certPem, material.rotation?.previous?.certPem];
  return pems
    .filter((pem): pem is string => pem !== undefined)
    .map((pem) => (pem.endsWith('\n') ? pem : `${pem}\n`))
    .join('');
}

/** `clientConfig.caBundle` as the Kubernetes API wants it: base64 of the PEM bundle ({@link trustBundlePem}). */
export function caBundleBase64(material: Pick<TlsMaterial, 'caCertPem' | 'rotation'>): string {
  return Buffer.from(trustBundlePem(material), 'utf8').toString('base64');
}
