// Per-cluster PKI for the local control plane, made with the openssl CLI: a cluster CA, the
// kube-apiserver serving certificate, one admin client certificate (O=system:masters) that every
// local component uses, and the service-account signing key pair.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ClusterPki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || String(err)}`);
  }
}

export function generatePki(dir: string): ClusterPki {
  mkdirSync(dir, { recursive: true });
  const p = (name: string): string => join(dir, name);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '3650',
      '-subj',
      '/CN=meshrev-local-ca',
      '-out',
      'ca.crt',
    ],
    dir,
  );

  writeFileSync(
    p('server.ext'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,' +
        'DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.0.0.1',
    ].join('\n'),
  );
  signLeaf(dir, 'server', '/CN=kube-apiserver', 'server.ext');

  writeFileSync(
    p('client.ext'),
    ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature', 'extendedKeyUsage=clientAuth'].join(
      '\n',
    ),
  );
  signLeaf(dir, 'admin', '/O=system:masters/CN=meshrev-admin', 'client.ext');

  openssl(['genrsa', '-out', 'sa.key', '2048'], dir);
  openssl(['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);

  return pkiPaths(dir);
}

/** Where generatePki put each file in `dir`. */
export function pkiPaths(dir: string): ClusterPki {
  const p = (name: string): string => join(dir, name);
  return {
    dir,
    caCert: p('ca.crt'),
    caKey: p('ca.key'),
    serverCert: p('server.crt'),
    serverKey: p('server.key'),
    adminCert: p('admin.crt'),
    adminKey: p('admin.key'),
    saKey: p('sa.key'),
    saPub: p('sa.pub'),
  };
}

function signLeaf(dir: string, name: string, subject: string, extFile: string): void {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '825',
      '-sha256',
      '-extfile',
      extFile,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

/**
 * A CA and a serving certificate for the given DNS names, for webhook servers in tests and local
 * runs. Returns PEM strings.
 */
export function generateServingCert(
  dir: string,
  dnsNames: string[],
): { caPem: string; certPem: string; keyPem: string } {
  mkdirSync(dir, { recursive: true });
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '30',
      '-subj',
      '/CN=meshrev-test-ca',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  writeFileSync(
    join(dir, 'serving.ext'),
    [
      'basicConstraints=CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      `subjectAltName=${[...dnsNames.map((d) => `DNS:${d}`), 'IP:127.0.0.1'].join(',')}`,
    ].join('\n'),
  );
  signLeaf(dir, 'serving', `/CN=${dnsNames[0] ?? 'localhost'}`, 'serving.ext');
  const read = (n: string): string => readFileSync(join(dir, n), 'utf8');
  return { caPem: read('ca.crt'), certPem: read('serving.crt'), keyPem: read('serving.key') };
}
