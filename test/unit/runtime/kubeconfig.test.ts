import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

import { connectionFromKubeconfig, loadConnection } from '../../../src/runtime/kubeconfig.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

function kubeconfig(
  user: Record<string, unknown>,
  cluster: Record<string, unknown> = {},
  current = 'dev',
): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': current,
    contexts: [
      { name: 'dev', context: { cluster: 'c1', user: 'u1' } },
      { name: 'other', context: { cluster: 'c2', user: 'u1' } },
    ],
    clusters: [
      {
        name: 'c1',
        cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': b64('CA1'), ...cluster },
      },
      { name: 'c2', cluster: { server: 'https://10.0.0.2:443' } },
    ],
    users: [{ name: 'u1', user }],
  });
}

describe('the light kubeconfig loader', () => {
  test('reads a client-certificate kubeconfig from embedded data', () => {
    const result = connectionFromKubeconfig(
      kubeconfig({ 'client-certificate-data': b64('CERT'), 'client-key-data': b64('KEY') }),
      '/',
    );
    expect(result).toEqual({
      ok: true,
      connection: { server: 'https://127.0.0.1:6443', ca: 'CA1', cert: 'CERT', key: 'KEY' },
    });
  });

  test('resolves file references relative to the kubeconfig and reads tokens', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kc-'));
    writeFileSync(join(dir, 'ca.crt'), 'CAFILE');
    const result = connectionFromKubeconfig(
      kubeconfig(
        { token: 'abc' },
        { 'certificate-authority-data': undefined, 'certificate-authority': 'ca.crt' },
      ),
      dir,
    );
    expect(result).toEqual({
      ok: true,
      connection: { server: 'https://127.0.0.1:6443', ca: 'CAFILE', token: 'abc' },
    });
  });

  test('honours an explicit context over current-context', () => {
    const result = connectionFromKubeconfig(kubeconfig({ token: 't' }), '/', 'other');
    expect(result.ok && result.connection.server).toBe('https://10.0.0.2:443');
  });

  test.each([
    ['an exec credential plugin', { exec: { command: 'aws' } }, 'user uses exec'],
    ['an auth provider', { 'auth-provider': { name: 'oidc' } }, 'user uses auth-provider'],
    ['impersonation', { as: 'someone' }, 'user uses as'],
  ])('hands %s over to client-node', (_what, user, reason) => {
    expect(connectionFromKubeconfig(kubeconfig(user), '/')).toEqual({ ok: false, reason });
  });

  test('names a missing context', () => {
    expect(connectionFromKubeconfig(kubeconfig({}), '/', 'nope')).toEqual({
      ok: false,
      reason: 'context "nope" not found in kubeconfig',
    });
  });

  test('falls back to nothing outside a cluster when no kubeconfig exists', () => {
    expect(loadConnection({}, { KUBECONFIG: join(tmpdir(), 'does-not-exist') })).toEqual({
      ok: false,
      reason: 'no kubeconfig found and not running in a cluster',
    });
  });

  test('prefers an explicit kubeconfig file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kc-'));
    writeFileSync(join(dir, 'config'), kubeconfig({ token: 'x' }));
    const result = loadConnection({ kubeconfig: join(dir, 'config') }, {});
    expect(result.ok && result.connection.token).toBe('x');
  });
});
