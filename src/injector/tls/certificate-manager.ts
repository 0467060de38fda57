// Owns the injector's CA and serving certificate, kept in one Secret shared by every operator replica and
// reused across restarts. Each pass reads the Secret and converges it: create it when absent (a replica that
// loses the create race adopts the winner's), reissue only the leaf when it ages or no longer fits (the CA, and
// therefore every webhook's caBundle, stays the same), and regenerate everything only when the CA itself is
// unusable. Listeners hear about every change of the material this replica serves, including changes another
// replica wrote.
import type { Logger } from 'pino';
import {
  DEFAULT_RENEW_BEFORE_MS,
  SECRET_KEYS,
  SERVING_VALIDITY_MS,
  caBundleFromSecret,
  caProblem,
  certificateValidity,
  generateCertificateAuthority,
  injectorDnsNames,
  issueServingCertificate,
  materialFromSecret,
  secretFromMaterial,
  servingProblem,
  type TlsMaterial,
  type TlsSecret,
} from './certificates.js';
import { isConflictError, isNotFoundError, type SecretStore } from './secret-store.js';

export const DEFAULT_TLS_SECRET_NAME = 'meshrev-injector-tls';
export const DEFAULT_INJECTOR_NAMESPACE = 'meshrev-system';
export const DEFAULT_INJECTOR_SERVICE = 'meshrev-injector';

export interface CertificateManagerOptions {
  store: SecretStore;
  namespace?: string;
  secretName?: string;
  serviceName?: string;
  clusterDomain?: string;
  /** Extra SANs, e.g. `localhost` for a locally run operator. */
  extraDnsNames?: string[];
  extraIpAddresses?: string[];
  /** Reissue the leaf once less than this remains (a third of the lifetime applies too). */
  renewBeforeMs?: number;
  caValidityMs?: number;
  servingValidityMs?: number;
  /** How often the Secret is re-read to rotate and to pick up other replicas' writes. */
  checkIntervalMs?: number;
  /** Create/update attempts per pass when other replicas keep winning the race. */
  maxConflictRetries?: number;
  now?: () => Date;
  logger?: Logger;
}

function caFromSecret(secret: TlsSecret): { certPem: string; keyPem: string } | undefined {
  const certPem = caBundleFromSecret(secret);
  const encodedKey = secret.data?.[SECRET_KEYS.caKey];
  if (certPem === undefined || encodedKey === undefined || encodedKey === '') return undefined;
  return { certPem, keyPem: Buffer.from(encodedKey, 'base64').toString('utf8') };
}

export type TlsMaterialListener = (material: TlsMaterial) => void;

const SECRET_LABELS = {
  'app.kubernetes.io/name': 'meshrev-injector',
  'app.kubernetes.io/managed-by': 'meshrev',
};

export class CertificateManager {
  private readonly store: SecretStore;
  private readonly namespace: string;
  private readonly secretName: string;
  private readonly dnsNames: string[];
  private readonly ipAddresses: string[];
  private readonly renewBeforeMs: number;
  private readonly caValidityMs: number | undefined;
  private readonly servingValidityMs: number | undefined;
  private readonly checkIntervalMs: number;
  private readonly maxConflictRetries: number;
  private readonly now: () => Date;
  private readonly logger: Logger | undefined;
  private readonly listeners = new Set<TlsMaterialListener>();
  private material: TlsMaterial | undefined;
  private notAfterMs: number | undefined;
  private pass: Promise<TlsMaterial> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(options: CertificateManagerOptions) {
    this.store = options.store;
    this.namespace = options.namespace ?? DEFAULT_INJECTOR_NAMESPACE;
    this.secretName = options.secretName ?? DEFAULT_TLS_SECRET_NAME;
    const serviceName = options.serviceName ?? DEFAULT_INJECTOR_SERVICE;
    this.dnsNames = [
      ...injectorDnsNames(serviceName, this.namespace, options.clusterDomain),
      ...(options.extraDnsNames ?? []),
    ];
    this.ipAddresses = [...(options.extraIpAddresses ?? [])];
    this.renewBeforeMs = options.renewBeforeMs ?? DEFAULT_RENEW_BEFORE_MS;
    this.caValidityMs = options.caValidityMs;
    this.servingValidityMs = options.servingValidityMs;
    this.checkIntervalMs = options.checkIntervalMs ?? 5 * 60 * 1000;
    this.maxConflictRetries = options.maxConflictRetries ?? 5;
    this.now = options.now ?? (() => new Date());
    this.logger = options.logger;
  }

  /** Converges the Secret once (rejecting if that fails) and then keeps checking on an unref'd timer. */
  async start(): Promise<TlsMaterial> {
    const material = await this.refresh();
    if (this.timer === undefined) {
      this.timer = setInterval(() => {
        this.refresh().catch((error: unknown) => {
          this.logger?.error(
            { err: error },
            'injector TLS check failed; the current certificate stays in use',
          );
        });
      }, this.checkIntervalMs);
      this.timer.unref();
    }
    return material;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One convergence pass; concurrent callers share the pass in progress. */
  refresh(): Promise<TlsMaterial> {
    this.pass ??= this.converge().finally(() => {
      this.pass = undefined;
    });
    return this.pass;
  }

  /** The material this replica serves. Throws before the first successful pass. */
  current(): TlsMaterial {
    if (this.material === undefined) throw new Error('injector TLS material is not loaded yet');
    return this.material;
  }

  /** Called with the new material whenever it changes; returns an unsubscribe function. */
  onChange(listener: TlsMaterialListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Seconds until the served leaf expires (negative once expired, 0 before anything is loaded). */
  certificateExpirySeconds(): number {
    if (this.notAfterMs === undefined) return 0;
    return (this.notAfterMs - this.now().getTime()) / 1000;
  }

  private async converge(): Promise<TlsMaterial> {
    for (let attempt = 1; attempt <= this.maxConflictRetries; attempt++) {
      const existing = await this.store.get(this.namespace, this.secretName);
      try {
        const material =
          existing === undefined ? await this.createSecret() : await this.convergeSecret(existing);
        this.adopt(material);
        return material;
      } catch (error) {
        if (!isConflictError(error) && !isNotFoundError(error)) throw error;
        // Another replica wrote (or deleted) the Secret between our read and write: read again and use theirs.
        this.logger?.debug({ attempt, secret: this.secretName }, 'injector TLS Secret changed concurrently');
      }
    }
    throw new Error(
      `gave up converging Secret ${this.namespace}/${this.secretName} after ${this.maxConflictRetries} conflicts`,
    );
  }

  private async createSecret(): Promise<TlsMaterial> {
    const material = await this.generateAll();
    await this.store.create(
      secretFromMaterial(material, {
        name: this.secretName,
        namespace: this.namespace,
        labels: SECRET_LABELS,
      }),
    );
    this.logger?.info(
      { secret: `${this.namespace}/${this.secretName}` },
      'created injector CA and certificate',
    );
    return material;
  }

  private async convergeSecret(existing: TlsSecret): Promise<TlsMaterial> {
    const now = this.now();
    const ca = caFromSecret(existing);
    const caIssue =
      ca === undefined
        ? 'the Secret lacks ca.crt or ca.key'
        : (caProblem({ certPem: ca.certPem, keyPem: ca.keyPem }, now) ??
          this.caAgeingProblem(ca.certPem, now));
    const stored = materialFromSecret(existing);
    const servingIssue =
      caIssue ??
      (stored === undefined
        ? 'the Secret lacks tls.crt or tls.key'
        : servingProblem(
            stored,
            { now, dnsNames: this.dnsNames, ipAddresses: this.ipAddresses },
            this.renewBeforeMs,
          ));
    if (stored !== undefined && servingIssue === undefined) return stored;

    const next =
      ca !== undefined && caIssue === undefined
        ? { caCertPem: ca.certPem, caKeyPem: ca.keyPem, ...(await this.issueLeaf(ca)) }
        : await this.generateAll();
    const { name, namespace, resourceVersion, labels, annotations } = existing.metadata;
    const secret = secretFromMaterial(next, { name, namespace, labels: { ...labels, ...SECRET_LABELS } });
    secret.metadata.resourceVersion = resourceVersion;
    if (annotations !== undefined) secret.metadata.annotations = annotations;
    await this.store.update(secret);
    this.logger?.info(
      { secret: `${namespace}/${name}`, reason: servingIssue, caRegenerated: caIssue !== undefined },
      caIssue === undefined
        ? 'reissued injector serving certificate'
        : 'regenerated injector CA and certificate',
    );
    return next;
  }

  /**
   * A CA with less than one leaf lifetime left can only sign ever shorter leaves, each due for rotation at once;
   * replacing it then (after about nine years with the defaults) avoids reissuing a leaf on every check.
   */
  private caAgeingProblem(caCertPem: string, now: Date): string | undefined {
    const notAfter = certificateValidity(caCertPem)?.notAfter.getTime() ?? 0;
    const leafLifetime = this.servingValidityMs ?? SERVING_VALIDITY_MS;
    return notAfter - now.getTime() < leafLifetime
      ? 'the CA expires within one serving-certificate lifetime'
      : undefined;
  }

  private async generateAll(): Promise<TlsMaterial> {
    const now = this.now();
    const ca = await generateCertificateAuthority({ now, validityMs: this.caValidityMs });
    const leaf = await this.issueLeaf(ca);
    return { caCertPem: ca.certPem, caKeyPem: ca.keyPem, certPem: leaf.certPem, keyPem: leaf.keyPem };
  }

  private issueLeaf(ca: { certPem: string; keyPem: string }) {
    return issueServingCertificate({
      ca,
      now: this.now(),
      dnsNames: this.dnsNames,
      ipAddresses: this.ipAddresses,
      validityMs: this.servingValidityMs,
    });
  }

  private adopt(material: TlsMaterial): void {
    const previous = this.material;
    const unchanged =
      previous !== undefined &&
      previous.certPem === material.certPem &&
      previous.keyPem === material.keyPem &&
      previous.caCertPem === material.caCertPem;
    this.material = material;
    this.notAfterMs = certificateValidity(material.certPem)?.notAfter.getTime();
    if (unchanged) return;
    for (const listener of this.listeners) {
      try {
        listener(material);
      } catch (error) {
        this.logger?.error({ err: error }, 'injector TLS change listener failed');
      }
    }
  }
}
