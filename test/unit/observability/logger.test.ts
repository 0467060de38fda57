import { Writable } from 'node:stream';

import { createLogger, objectLogger, redactCensor } from '../../../src/observability/logger.js';

class Lines extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void) {
    for (const line of chunk.toString().split('\n')) if (line.trim()) this.lines.push(JSON.parse(line));
    done();
  }
}

function logger(level = 'info') {
  const out = new Lines();
  return { out, log: createLogger({ component: 'operator', level, destination: out }) };
}

describe('createLogger', () => {
  it('writes JSON lines with the component, a textual level and an ISO time', () => {
    const { out, log } = logger();
    log.info({ revision: 'asm-1' }, 'hello');
    expect(out.lines[0]).toMatchObject({
      component: 'operator',
      level: 'info',
      revision: 'asm-1',
      msg: 'hello',
    });
    expect(String(out.lines[0]?.time)).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('honours the configured level and rejects unknown ones', () => {
    const { out, log } = logger('warn');
    log.info('hidden');
    log.warn('shown');
    expect(out.lines.map((l) => l.msg)).toEqual(['shown']);
    expect(() => createLogger({ component: 'x', level: 'verbose' })).toThrow(/unknown log level/);
  });

  it.each([
    ['a top-level token', { token: 'abc' }, (l: Record<string, unknown>) => l.token],
    [
      'a nested password',
      { kubeconfig: { password: 'pw' } },
      (l: Record<string, unknown>) => (l.kubeconfig as Record<string, unknown>).password,
    ],
    [
      'an authorization header',
      { request: { headers: { authorization: 'Bearer x' } } },
      (l: Record<string, unknown>) =>
        ((l.request as Record<string, unknown>).headers as Record<string, unknown>).authorization,
    ],
    [
      'a private key',
      { cert: { privateKey: '-----BEGIN PRIVATE KEY-----' } },
      (l: Record<string, unknown>) => (l.cert as Record<string, unknown>).privateKey,
    ],
    [
      'a Secret tls.key',
      { secret: { data: { 'tls.key': 'LS0t', 'tls.crt': 'crt' } } },
      (l: Record<string, unknown>) =>
        ((l.secret as Record<string, unknown>).data as Record<string, unknown>)['tls.key'],
    ],
  ])('redacts %s', (_what, fields, pick) => {
    const { out, log } = logger();
    log.info(fields, 'with secret');
    expect(pick(out.lines[0] ?? {})).toBe(redactCensor);
    expect(JSON.stringify(out.lines[0])).not.toMatch(/abc|pw|Bearer x|BEGIN PRIVATE|LS0t/);
  });

  it('logs a Kubernetes object as a reference, so its data never reaches the log', () => {
    const { out, log } = logger();
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'istiod-tls', namespace: 'meshrev-system', resourceVersion: '9' },
      data: { 'ca.crt': 'Y2E=' },
    };
    objectLogger(log, { controller: 'revision', reconcileID: 'r-1', object: secret }).info('applied');
    log.info({ object: secret }, 'direct');
    for (const line of out.lines) {
      expect(line.object).toEqual({
        kind: 'Secret',
        name: 'istiod-tls',
        namespace: 'meshrev-system',
        resourceVersion: '9',
      });
    }
    expect(out.lines[0]).toMatchObject({ controller: 'revision', reconcileID: 'r-1' });
    expect(JSON.stringify(out.lines)).not.toContain('Y2E=');
  });
});
