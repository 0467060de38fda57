import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from '@jest/globals';
import {
  CA_VALIDITY_MS,
  SERVING_VALIDITY_MS,
  caBundleBase64,
  caCertFromSecret,
  caProblem,
  generateCertificateAuthority,
  injectorDnsNames,
  issueServingCertificate,
  leafProblem,
  materialFromSecret,
  needsRotation,
  secretFromMaterial,
  servingProblem,
  trustBundlePem,
  type TlsMaterial,
} from '../../../../src/injector/tls/certificates.js';

const DAY_MS = 24 * 60 * 60 * 1000;
const NOW = new Date('2026-09-01T12:00:00Z');
const DNS_NAMES = injectorDnsNames('meshrev-injector', 'meshrev-system');

async function freshMaterial(now = NOW): Promise<TlsMaterial> {
  const ca = await generateCertificateAuthority({ now });
  const leaf = await issueServingCertificate({ ca, now, dnsNames: DNS_NAMES, ipAddresses: ['127.0.0.1'] });
  return { caCertPem: ca.certPem, caKeyPem: ca.keyPem, certPem: leaf.certPem, keyPem: leaf.keyPem };
}

describe('injector DNS names', () => {
  it('lists every name kube-apiserver may dial for the service, from short to fully qualified', () => {
    expect(injectorDnsNames('meshrev-injector', 'meshrev-system')).toEqual([
      'meshrev-injector',
      'meshrev-injector.meshrev-system',
      'meshrev-injector.meshrev-system.svc',
      'meshrev-injector.meshrev-system.svc.cluster.local',
    ]);
    expect(injectorDnsNames('inj', 'ns', 'example.internal')[3]).toBe('inj.ns.svc.example.internal');
  });
});

describe('certificate generation', () => {
  it('creates a ten-year ECDSA P-256 CA that is a CA and signs itself', async () => {
    const ca = await generateCertificateAuthority({ now: NOW });
    const certificate = new X509Certificate(ca.certPem);
    expect(certificate.ca).toBe(true);
    expect(certificate.checkIssued(certificate)).toBe(true);
    expect(certificate.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(certificate.validToDate.getTime()).toBe(
      Math.floor((NOW.getTime() + CA_VALIDITY_MS) / 1000) * 1000,
    );
    expect(certificate.validFromDate.getTime()).toBeLessThan(NOW.getTime());
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it('issues a one-year serving leaf signed by the CA with the service DNS names and extra SANs', async () => {
    const material = await freshMaterial();
    const ca = new X509Certificate(material.caCertPem);
    const leaf = new X509Certificate(material.certPem);
    expect(leaf.ca).toBe(false);
    expect(leaf.checkIssued(ca)).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    for (const name of DNS_NAMES) expect(leaf.checkHost(name)).toBe(name);
    expect(leaf.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(leaf.checkHost('other.meshrev-system.svc')).toBeUndefined();
    expect(leaf.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
    expect(leaf.validToDate.getTime()).toBe(Math.floor((NOW.getTime() + SERVING_VALIDITY_MS) / 1000) * 1000);
  });

  it('never lets the leaf outlive the CA that signed it', async () => {
    const ca = await generateCertificateAuthority({ now: NOW, validityMs: 10 * DAY_MS });
    const leaf = await issueServingCertificate({ ca, now: NOW, dnsNames: DNS_NAMES });
    expect(new X509Certificate(leaf.certPem).validToDate.getTime()).toBeLessThanOrEqual(
      new X509Certificate(ca.certPem).validToDate.getTime(),
    );
  });

  it('refuses to issue a leaf without any DNS name', async () => {
    const ca = await generateCertificateAuthority({ now: NOW });
    await expect(issueServingCertificate({ ca, now: NOW, dnsNames: [] })).rejects.toThrow(/DNS name/);
  });
});

describe('needsRotation', () => {
  const cases: Array<{
    name: string;
    validityDays: number;
    ageDays: number;
    renewBeforeDays?: number;
    rotate: boolean;
  }> = [
    { name: 'a fresh one-year leaf is kept', validityDays: 365, ageDays: 0, rotate: false },
    { name: 'a one-year leaf at 200 days old is kept', validityDays: 365, ageDays: 200, rotate: false },
    {
      name: 'a one-year leaf with less than a third left is rotated',
      validityDays: 365,
      ageDays: 250,
      rotate: true,
    },
    { name: 'an expired leaf is rotated', validityDays: 365, ageDays: 400, rotate: true },
    {
      name: 'a 60-day leaf with 25 days left is rotated by the 30-day floor',
      validityDays: 60,
      ageDays: 35,
      rotate: true,
    },
    { name: 'a 90-day leaf with 40 days left is kept', validityDays: 90, ageDays: 50, rotate: false },
    {
      name: 'a larger renew-before window rotates earlier',
      validityDays: 365,
      ageDays: 200,
      renewBeforeDays: 180,
      rotate: true,
    },
  ];

  it.each(cases)('$name', async ({ validityDays, ageDays, renewBeforeDays, rotate }) => {
    const ca = await generateCertificateAuthority({ now: NOW });
    const leaf = await issueServingCertificate({
      ca,
      now: NOW,
      dnsNames: DNS_NAMES,
      validityMs: validityDays * DAY_MS,
    });
    const later = new Date(NOW.getTime() + ageDays * DAY_MS);
    const renewBefore = renewBeforeDays === undefined ? undefined : renewBeforeDays * DAY_MS;
    expect(needsRotation(leaf.certPem, later, renewBefore)).toBe(rotate);
  });

  it('rotates a certificate that cannot be parsed or is not valid yet', async () => {
    expect(needsRotation('not a certificate', NOW)).toBe(true);
    const material = await freshMaterial();
    expect(needsRotation(material.certPem, new Date(NOW.getTime() - 2 * DAY_MS))).toBe(true);
  });
});

describe('material checks', () => {
  it('accepts fresh material for the names it was issued for', async () => {
    const material = await freshMaterial();
    expect(caProblem({ certPem: material.caCertPem, keyPem: material.caKeyPem }, NOW)).toBeUndefined();
    expect(
      servingProblem(material, { now: NOW, dnsNames: DNS_NAMES, ipAddresses: ['127.0.0.1'] }),
    ).toBeUndefined();
  });

  it('reports a leaf from another CA, a swapped key, a missing name and an ageing leaf', async () => {
    const material = await freshMaterial();
    const other = await freshMaterial();
    const expectations = { now: NOW, dnsNames: DNS_NAMES };
    expect(servingProblem({ ...material, caCertPem: other.caCertPem }, expectations)).toMatch(
      /not signed by/,
    );
    expect(servingProblem({ ...material, keyPem: other.keyPem }, expectations)).toMatch(/does not match/);
    expect(servingProblem(material, { ...expectations, dnsNames: ['injector.elsewhere.svc'] })).toMatch(
      /does not cover DNS name injector.elsewhere.svc/,
    );
    expect(servingProblem(material, { ...expectations, ipAddresses: ['10.0.0.1'] })).toMatch(/IP address/);
    expect(
      servingProblem(material, { ...expectations, now: new Date(NOW.getTime() + 300 * DAY_MS) }),
    ).toMatch(/due for rotation/);
    expect(servingProblem({ ...material, certPem: 'garbage' }, expectations)).toMatch(/cannot be read/);
  });

  it('keeps an ageing leaf that ends with its CA, since a reissue could not outlast it', async () => {
    const ca = await generateCertificateAuthority({ now: NOW, validityMs: 40 * DAY_MS });
    const capped = await issueServingCertificate({ ca, now: NOW, dnsNames: DNS_NAMES });
    const shorter = await issueServingCertificate({
      ca,
      now: NOW,
      dnsNames: DNS_NAMES,
      validityMs: 35 * DAY_MS,
    });
    const material = { caCertPem: ca.certPem, caKeyPem: ca.keyPem };
    const expectations = { now: new Date(NOW.getTime() + 30 * DAY_MS), dnsNames: DNS_NAMES };

    expect(servingProblem({ ...material, ...capped }, expectations)).toBeUndefined();
    expect(servingProblem({ ...material, ...shorter }, expectations)).toMatch(/due for rotation/);
    expect(
      servingProblem(
        { ...material, ...capped },
        { ...expectations, now: new Date(NOW.getTime() + 41 * DAY_MS) },
      ),
    ).toMatch(/outside its validity/);
    const other = await freshMaterial();
    expect(servingProblem({ ...capped, caCertPem: other.caCertPem }, expectations)).toMatch(/not signed by/);
  });

  it('reports a CA whose key does not match, that is not a CA, or that expired', async () => {
    const material = await freshMaterial();
    const other = await freshMaterial();
    expect(caProblem({ certPem: material.caCertPem, keyPem: other.caKeyPem }, NOW)).toMatch(/does not match/);
    expect(caProblem({ certPem: material.certPem, keyPem: material.keyPem }, NOW)).toMatch(/not a CA/);
    expect(
      caProblem(
        { certPem: material.caCertPem, keyPem: material.caKeyPem },
        new Date(NOW.getTime() + 4000 * DAY_MS),
      ),
    ).toMatch(/expired/);
    expect(caProblem({ certPem: 'nope', keyPem: 'nope' }, NOW)).toMatch(/cannot be read/);
  });
});

describe('Secret round trip', () => {
  it('stores the four PEMs under ca.crt, ca.key, tls.crt and tls.key and reads them back', async () => {
    const material = await freshMaterial();
    const secret = secretFromMaterial(material, {
      name: 'meshrev-injector-tls',
      namespace: 'meshrev-system',
    });
    expect(secret.type).toBe('kubernetes.io/tls');
    expect(Object.keys(secret.data ?? {}).sort()).toEqual(['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
    expect(materialFromSecret(secret)).toEqual(material);
    expect(caCertFromSecret(secret)).toBe(material.caCertPem);
    expect(Buffer.from(caBundleBase64(material), 'base64').toString('utf8')).toBe(material.caCertPem);
  });

  it('reads nothing from a Secret that lacks any of the keys', async () => {
    const material = await freshMaterial();
    const secret = secretFromMaterial(material, { name: 'x', namespace: 'y' });
    const { 'tls.key': _dropped, ...partial } = secret.data ?? {};
    expect(materialFromSecret({ data: partial })).toBeUndefined();
    expect(materialFromSecret({})).toBeUndefined();
    expect(caCertFromSecret({})).toBeUndefined();
  });

  it('keeps a CA rotation in extra keys and meshrev annotations beside the user’s own', async () => {
    const material = await freshMaterial();
    const next = await generateCertificateAuthority({ now: NOW });
    const previous = await generateCertificateAuthority({ now: NOW });
    const stagedAt = new Date('2026-09-01T12:05:00Z');
    const rotating: TlsMaterial = {
      ...material,
      rotation: {
        next: { ...next, since: stagedAt },
        previous: { certPem: previous.certPem, since: undefined },
      },
    };
    const stampedAt = new Date('2026-09-01T12:06:00Z');
    const secret = secretFromMaterial(
      rotating,
      {
        name: 'x',
        namespace: 'y',
        annotations: { team: 'platform', 'meshrev.dev/next-ca-staged-at': 'old' },
      },
      stampedAt,
    );

    expect(Object.keys(secret.data ?? {}).sort()).toEqual([
      'ca.crt',
      'ca.key',
      'next-ca.crt',
      'next-ca.key',
      'previous-ca.crt',
      'tls.crt',
      'tls.key',
    ]);
    expect(secret.metadata.annotations).toEqual({
      team: 'platform',
      'meshrev.dev/next-ca-staged-at': stagedAt.toISOString(),
      'meshrev.dev/previous-ca-retired-at': stampedAt.toISOString(),
    });
    expect(materialFromSecret(secret)).toEqual({
      ...rotating,
      rotation: {
        next: { ...next, since: stagedAt },
        previous: { certPem: previous.certPem, since: stampedAt },
      },
    });
    // The bundle: the signing CA first, then the staged one, then the retired one.
    expect(trustBundlePem(rotating)).toBe(material.caCertPem + next.certPem + previous.certPem);
    expect(caCertFromSecret(secret)).toBe(material.caCertPem);

    const garbled = {
      ...secret,
      metadata: { ...secret.metadata, annotations: { 'meshrev.dev/next-ca-staged-at': 'soon' } },
    };
    expect(materialFromSecret(garbled)?.rotation?.next?.since).toBeUndefined();
    expect(materialFromSecret(garbled)?.rotation?.previous?.since).toBeUndefined();
  });
});

describe('leafProblem', () => {
  it('accepts a leaf that is only due for renewal, which servingProblem would replace', async () => {
    const material = await freshMaterial();
    const expectations = { now: new Date(NOW.getTime() + 300 * DAY_MS), dnsNames: DNS_NAMES };
    expect(servingProblem(material, expectations)).toMatch(/due for rotation/);
    expect(leafProblem(material, expectations)).toBeUndefined();
    expect(leafProblem(material, { ...expectations, now: new Date(NOW.getTime() + 400 * DAY_MS) })).toMatch(
      /outside its validity/,
    );
    const other = await freshMaterial();
    expect(leafProblem({ ...material, caCertPem: other.caCertPem }, expectations)).toMatch(/not signed by/);
  });
});
