// Owns the injector's CA and serving certificate, kept in one Secret shared by every operator replica and
// reused across restarts. Each pass reads the Secret and converges it: create it when absent (a replica that
// loses the create race adopts the winner's), reissue only the leaf when it ages or no longer fits (the CA, and
// therefore every webhook's caBundle, stays the same), and replace the CA in steps when it ages or can no longer
// sign: stage a successor in the trust bundle, let it sign after an overlap, keep the replaced CA trusted for
// another overlap (see nextMaterial). Listeners hear about every change of the material this replica serves,
// including changes another replica wrote.
import type { Logger } from 'pino';
import {
  DEFAULT_RENEW_BEFORE_MS,
  ROTATION_ANNOTATIONS,
  SECRET_KEYS,
  SERVING_VALIDITY_MS,
  caProblem,
  certificateValidity,
  generateCertificateAuthority,
  injectorDnsNames,
  issueServingCertificate,
  leafProblem,
  rotationFromSecret,
  secretFromMaterial,
  servingProblem,
  trustBundlePem,
  type CaRotation,
  type KeyPairPem,
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
  /**
   * How often the Secret is re-read regardless of `watch`: the fallback for missed notifications, and the pace of
   * ageing checks.
   */
  checkIntervalMs?: number;
  /**
   * Subscribes to changes of the Secret (the operator uses a watch); returns an unsubscribe function. Each
   * notification re-reads the Secret, so another replica's write, a deletion or a replace-ca request is acted on
   * within moments instead of at the next check.
   */
  watch?: (onChange: () => void) => () => void;
  /**
   * How long a staged CA is trusted before it signs, and a replaced CA stays trusted after. It must cover every
   * replica's next pass (the leader's publishes the bundle) plus kube-apiserver seeing the webhook change; by
   * default twice the check interval plus a minute.
   */
  caOverlapMs?: number;
  /** Create/update attempts per pass when other replicas keep winning the race. */
  maxConflictRetries?: number;
  now?: () => Date;
  logger?: Logger;
}

/** The current PEMs one by one (each undefined when missing or empty), so a half can be used without the other. */
function storedPems(secret: TlsSecret): Partial<Omit<TlsMaterial, 'rotation'>> {
  const decode = (key: string): string | undefined => {
    const value = secret.data?.[key];
    return value === undefined || value === '' ? undefined : Buffer.from(value, 'base64').toString('utf8');
  };
  return {
    caCertPem: decode(SECRET_KEYS.caCert),
    caKeyPem: decode(SECRET_KEYS.caKey),
    certPem: decode(SECRET_KEYS.cert),
    keyPem: decode(SECRET_KEYS.key),
  };
}

/**
 * The rotation halves stored in the Secret that can still be used, each with a start time: a staged CA that cannot
 * sign and a previous CA that has expired are dropped, and a half whose time cannot be read starts now (so its
 * overlap is never cut short). Each such repair is noted in `changes`.
 */
function usableRotation(secret: TlsSecret, now: Date, changes: string[]): CaRotation {
  let { next, previous } = rotationFromSecret(secret) ?? {};
  const nextIssue = next === undefined ? undefined : caProblem(next, now);
  if (nextIssue !== undefined) {
    changes.push(`discarded the staged CA: ${nextIssue}`);
    next = undefined;
  }
  if (previous !== undefined && !unexpired(previous.certPem, now)) {
    changes.push('dropped the previous CA, which has expired or cannot be read');
    previous = undefined;
  }
  if (next !== undefined && next.since === undefined) {
    changes.push('stamped the staged CA');
    next = { ...next, since: now };
  }
  if (previous !== undefined && previous.since === undefined) {
    changes.push('stamped the previous CA');
    previous = { ...previous, since: now };
  }
  return { ...(next === undefined ? {} : { next }), ...(previous === undefined ? {} : { previous }) };
}

function unexpired(certPem: string, now: Date): boolean {
  return (certificateValidity(certPem)?.notAfter.getTime() ?? 0) > now.getTime();
}

/**
 * Milliseconds until the rotation in `material` can take its next step (promote the staged CA, or drop the
 * previous one), or undefined when none is pending. Never negative.
 */
export function nextRotationStepInMs(
  material: TlsMaterial,
  overlapMs: number,
  now: Date,
): number | undefined {
  const starts = [material.rotation?.next?.since, material.rotation?.previous?.since].filter(
    (since): since is Date => since !== undefined,
  );
  if (starts.length === 0) return undefined;
  const earliest = Math.min(...starts.map((since) => since.getTime()));
  return Math.max(0, earliest + overlapMs - now.getTime());
}

/** Whether a replica serving `a` serves and publishes the same as one serving `b` (rotation times aside). */
function sameServedMaterial(a: TlsMaterial, b: TlsMaterial): boolean {
  return a.certPem === b.certPem && a.keyPem === b.keyPem && trustBundlePem(a) === trustBundlePem(b);
}

function countCas(material: TlsMaterial): number {
  return 1 + (material.rotation?.next ? 1 : 0) + (material.rotation?.previous ? 1 : 0);
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
  private readonly caOverlapMs: number;
  private readonly maxConflictRetries: number;
  private readonly now: () => Date;
  private readonly logger: Logger | undefined;
  private readonly listeners = new Set<TlsMaterialListener>();
  private material: TlsMaterial | undefined;
  private notAfterMs: number | undefined;
  private pass: Promise<TlsMaterial> | undefined;
  /** A notification arrived during the pass in progress, which may have read the Secret before the change. */
  private passAgain = false;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  /** Wakes the manager when the next rotation step falls due, if that comes before the next check. */
  private stepTimer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private readonly watch: CertificateManagerOptions['watch'];

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
    this.caOverlapMs = options.caOverlapMs ?? 2 * this.checkIntervalMs + 60_000;
    this.maxConflictRetries = options.maxConflictRetries ?? 5;
    this.now = options.now ?? (() => new Date());
    this.logger = options.logger;
    this.watch = options.watch;
  }

  /**
   * Converges the Secret once (rejecting if that fails), then keeps it converged: on every `watch` notification,
   * when a rotation step falls due, and on an unref'd timer every check interval.
   */
  async start(): Promise<TlsMaterial> {
    const material = await this.refresh();
    if (this.running) return material;
    this.running = true;
    this.timer = setInterval(() => this.refreshInBackground(), this.checkIntervalMs);
    this.timer.unref();
    this.unwatch = this.watch?.(() => this.refreshInBackground());
    this.scheduleNextStep(material);
    return material;
  }

  stop(): void {
    this.running = false;
    clearInterval(this.timer);
    clearTimeout(this.stepTimer);
    this.timer = undefined;
    this.stepTimer = undefined;
    this.unwatch?.();
    this.unwatch = undefined;
  }

  /** One convergence pass; concurrent callers share the pass in progress. */
  refresh(): Promise<TlsMaterial> {
    this.pass ??= this.converge().finally(() => {
      this.pass = undefined;
      if (this.passAgain) {
        this.passAgain = false;
        this.refreshInBackground();
      }
    });
    return this.pass;
  }

  /** A pass whose failure is logged (the served certificate stays); one more is queued if a pass is running. */
  private refreshInBackground(): void {
    if (!this.running) return;
    if (this.pass !== undefined) {
      this.passAgain = true;
      return;
    }
    this.refresh().then(
      (material) => this.scheduleNextStep(material),
      (error: unknown) => {
        this.logger?.error({ err: error }, 'injector TLS check failed; the current certificate stays in use');
      },
    );
  }

  /** Without this, each step of a CA replacement would wait up to a check interval after its overlap ends. */
  private scheduleNextStep(material: TlsMaterial): void {
    clearTimeout(this.stepTimer);
    this.stepTimer = undefined;
    const dueInMs = nextRotationStepInMs(material, this.caOverlapMs, this.now());
    if (!this.running || dueInMs === undefined || dueInMs >= this.checkIntervalMs) return;
    this.stepTimer = setTimeout(() => this.refreshInBackground(), dueInMs);
    this.stepTimer.unref();
  }

  /** The material this replica serves. Throws before the first successful pass. */
  current(): TlsMaterial {
    if (this.material === undefined) throw new Error('injector TLS material is not loaded yet');
    return this.material;
  }

  /**
   * Called with the new material whenever it changes; returns an unsubscribe function. A subscriber already using
   * some material passes it as `since`, and hears at once if the manager adopted something else before the
   * subscription: later passes find that unchanged and would never announce it.
   */
  onChange(listener: TlsMaterialListener, since?: TlsMaterial): () => void {
    this.listeners.add(listener);
    if (since !== undefined && this.material !== undefined && !sameServedMaterial(since, this.material)) {
      this.notify(listener, this.material);
    }
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

  /**
   * Creates the Secret: on first install with a new CA; after someone deleted it, from the material this replica
   * still serves, so neither the CA every webhook trusts nor any replica's leaf changes.
   */
  private async createSecret(): Promise<TlsMaterial> {
    const now = this.now();
    const kept =
      this.material !== undefined &&
      leafProblem(this.material, { now, dnsNames: this.dnsNames, ipAddresses: this.ipAddresses }) ===
        undefined
        ? this.material
        : undefined;
    const material = kept ?? (await this.generateAll());
    await this.store.create(
      secretFromMaterial(
        material,
        { name: this.secretName, namespace: this.namespace, labels: SECRET_LABELS },
        now,
      ),
    );
    this.logger?.info(
      { secret: `${this.namespace}/${this.secretName}` },
      kept
        ? 'recreated the deleted injector TLS Secret from the material this replica serves'
        : 'created injector CA and certificate',
    );
    return material;
  }

  private async convergeSecret(existing: TlsSecret): Promise<TlsMaterial> {
    const now = this.now();
    const { material, changes } = await this.nextMaterial(existing, now);
    if (changes.length === 0) return material;

    // An update replaces the whole Secret: what meshrev does not manage (owner references or finalizers someone
    // added, and the type, which cannot change once created) is carried over, or the update would drop it or be
    // refused every time.
    const { labels, annotations, managedFields: _managedFields, ...kept } = existing.metadata;
    const secret = secretFromMaterial(
      material,
      { ...kept, labels: { ...labels, ...SECRET_LABELS }, ...(annotations ? { annotations } : {}) },
      now,
    );
    if (existing.type !== undefined) secret.type = existing.type;
    await this.store.update(secret);
    this.logger?.info(
      {
        secret: `${existing.metadata.namespace}/${existing.metadata.name}`,
        changes,
        trustedCas: countCas(material),
      },
      'updated injector TLS material',
    );
    return material;
  }

  /**
   * What the Secret should hold next, and why (no changes: keep it as it is). The order of the steps is what keeps
   * every admission working across replicas: a new CA is trusted (staged) before it signs (promoted), and the CA
   * it replaces stays trusted (previous) until every replica has had a pass to pick up a leaf of the new one.
   * Only when nothing in the Secret can be served any more does a new CA sign at once.
   */
  private async nextMaterial(
    existing: TlsSecret,
    now: Date,
  ): Promise<{ material: TlsMaterial; changes: string[] }> {
    const changes: string[] = [];
    const stored = storedPems(existing);
    const servedCa = this.servedCaFor(stored, now);
    if (servedCa !== undefined) {
      stored.caCertPem = servedCa;
      changes.push('restored ca.crt, which could not be read, from the CA this replica serves');
    }
    const expectations = { now, dnsNames: this.dnsNames, ipAddresses: this.ipAddresses };
    const signingIssue =
      stored.caCertPem === undefined || stored.caKeyPem === undefined
        ? 'the Secret lacks ca.crt or ca.key'
        : caProblem({ certPem: stored.caCertPem, keyPem: stored.caKeyPem }, now);
    const servedIssue =
      stored.caCertPem === undefined || stored.certPem === undefined || stored.keyPem === undefined
        ? 'the Secret lacks ca.crt, tls.crt or tls.key'
        : leafProblem(
            { caCertPem: stored.caCertPem, certPem: stored.certPem, keyPem: stored.keyPem },
            expectations,
          );

    let { next, previous } = usableRotation(existing, now, changes);
    const replaceRequested = existing.metadata.annotations?.[ROTATION_ANNOTATIONS.replaceCa] !== undefined;
    if (replaceRequested) changes.push(`took the ${ROTATION_ANNOTATIONS.replaceCa} request`);

    let ca: KeyPairPem | undefined =
      signingIssue === undefined
        ? { certPem: stored.caCertPem ?? '', keyPem: stored.caKeyPem ?? '' }
        : undefined;
    let leaf: KeyPairPem | undefined =
      servedIssue === undefined ? { certPem: stored.certPem ?? '', keyPem: stored.keyPem ?? '' } : undefined;
    let promoted = false;

    if (ca === undefined && leaf === undefined) {
      // Nothing stored can be served: a new CA signs now. Webhooks trust it only once the leader applies the new
      // bundle, so admissions can fail briefly; the old CA, if still readable, stays trusted for other replicas.
      const replaced =
        stored.caCertPem !== undefined && unexpired(stored.caCertPem, now) ? stored.caCertPem : undefined;
      ca = next ?? (await this.generateCa());
      changes.push(
        `${signingIssue}; ${servedIssue}: ${next ? 'promoted the staged CA' : 'generated a new CA'} without an overlap`,
      );
      if (replaced !== undefined) previous = { certPem: replaced, since: now };
      next = undefined;
      promoted = true;
    } else if (next !== undefined && this.overlapOver(next.since, now)) {
      if (stored.caCertPem !== undefined) previous = { certPem: stored.caCertPem, since: now };
      ca = next;
      next = undefined;
      promoted = true;
      changes.push('promoted the staged CA after the overlap');
    } else if (next === undefined) {
      const why =
        signingIssue ??
        (replaceRequested ? `asked by annotation ${ROTATION_ANNOTATIONS.replaceCa}` : undefined) ??
        this.caAgeingProblem(stored.caCertPem ?? '', now);
      if (why !== undefined) {
        next = { ...(await this.generateCa()), since: now };
        changes.push(`staged a new CA (${why})`);
      }
    }
    if (promoted) {
      leaf = undefined;
    } else if (previous !== undefined && this.overlapOver(previous.since, now)) {
      previous = undefined;
      changes.push('dropped the previous CA after the overlap');
    }

    if (ca !== undefined) {
      const leafIssue =
        leaf === undefined
          ? (servedIssue ?? 'the CA changed')
          : servingProblem({ caCertPem: ca.certPem, ...leaf }, expectations, this.renewBeforeMs);
      if (leafIssue !== undefined) {
        leaf = await this.issueLeaf(ca);
        changes.push(`issued a serving certificate (${leafIssue})`);
      }
    }
    // Without a CA that can sign, the stored leaf stays (the first branch above handled there being none).
    const rotation = {
      ...(next === undefined ? {} : { next }),
      ...(previous === undefined ? {} : { previous }),
    };
    const material: TlsMaterial = {
      caCertPem: ca?.certPem ?? stored.caCertPem ?? '',
      caKeyPem: ca?.keyPem ?? stored.caKeyPem ?? '',
      certPem: leaf?.certPem ?? '',
      keyPem: leaf?.keyPem ?? '',
      ...(next === undefined && previous === undefined ? {} : { rotation }),
    };
    return { material, changes };
  }

  private overlapOver(since: Date | undefined, now: Date): boolean {
    return since !== undefined && now.getTime() - since.getTime() >= this.caOverlapMs;
  }

  /**
   * The CA certificate this replica serves, when the stored ca.crt is missing or unreadable (a hand edit, a bad sync)
   * but ca.key still belongs to it. Read as stored, nothing in the Secret could be served (the leaf no longer chains
   * to a readable CA), so a new CA would sign at once with no overlap while every webhook still trusts this one.
   */
  private servedCaFor(stored: Partial<Omit<TlsMaterial, 'rotation'>>, now: Date): string | undefined {
    const served = this.material?.caCertPem;
    if (served === undefined || stored.caKeyPem === undefined) return undefined;
    if (stored.caCertPem !== undefined && certificateValidity(stored.caCertPem) !== undefined)
      return undefined;
    return caProblem({ certPem: served, keyPem: stored.caKeyPem }, now) === undefined ? served : undefined;
  }

  /**
   * A CA with less than one leaf lifetime left can only sign leaves that end with it, which no reissue extends
   * (servingProblem keeps them); replacing it then (after about nine years with the defaults) is what gives the
   * leaf a full lifetime again.
   */
  private caAgeingProblem(caCertPem: string, now: Date): string | undefined {
    const notAfter = certificateValidity(caCertPem)?.notAfter.getTime() ?? 0;
    const leafLifetime = this.servingValidityMs ?? SERVING_VALIDITY_MS;
    return notAfter - now.getTime() < leafLifetime
      ? 'the CA expires within one serving-certificate lifetime'
      : undefined;
  }

  private generateCa(): Promise<KeyPairPem> {
    return generateCertificateAuthority({ now: this.now(), validityMs: this.caValidityMs });
  }

  private async generateAll(): Promise<TlsMaterial> {
    const ca = await this.generateCa();
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
    this.material = material;
    this.notAfterMs = certificateValidity(material.certPem)?.notAfter.getTime();
    if (previous !== undefined && sameServedMaterial(previous, material)) return;
    for (const listener of this.listeners) this.notify(listener, material);
  }

  private notify(listener: TlsMaterialListener, material: TlsMaterial): void {
    try {
      listener(material);
    } catch (error) {
      this.logger?.error({ err: error }, 'injector TLS change listener failed');
    }
  }
}
