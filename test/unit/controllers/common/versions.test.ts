import {
  checkSupportedVersion,
  DEFAULT_CHANNEL_TABLE,
  parseChannelTable,
  resolveChannel,
  resolveRevisionVersion,
} from '../../../../src/controllers/common/versions.js';

describe('resolveChannel', () => {
  it('maps every built-in channel to a supported version', () => {
    for (const channel of ['regular', 'rapid', 'stable']) {
      const resolved = resolveChannel(channel, DEFAULT_CHANNEL_TABLE);
      expect(resolved).toEqual({ ok: true, version: expect.stringMatching(/^1\.(28|29|30)\.\d+$/), channel });
    }
  });

  it('reports an unknown channel with the UnknownChannel reason', () => {
    expect(resolveChannel('beta', DEFAULT_CHANNEL_TABLE)).toEqual({
      ok: false,
      reason: 'UnknownChannel',
      message: "channel 'beta' is unknown; known channels are regular, rapid, stable",
    });
  });

  it('follows the table it is given', () => {
    expect(resolveChannel('rapid', { ...DEFAULT_CHANNEL_TABLE, rapid: '1.30.9' })).toEqual({
      ok: true,
      version: '1.30.9',
      channel: 'rapid',
    });
  });
});

describe('resolveRevisionVersion', () => {
  it.each([
    [{ version: '1.29.2' }, { ok: true, version: '1.29.2' }],
    [{ channel: 'stable' }, { ok: true, version: DEFAULT_CHANNEL_TABLE.stable, channel: 'stable' }],
    [{ version: '1.20.1' }, { ok: false, reason: 'UnsupportedVersion' }],
    [
      { version: '1.29.2', channel: 'stable' },
      { ok: false, reason: 'InvalidSpec' },
    ],
    [{}, { ok: false, reason: 'InvalidSpec' }],
  ])('resolves %j', (spec, expected) => {
    expect(resolveRevisionVersion(spec, DEFAULT_CHANNEL_TABLE)).toMatchObject(expected);
  });
});

describe('checkSupportedVersion', () => {
  it.each([
    ['1.28.0', true],
    ['1.30.3', true],
    ['1.30.0-beta.1', true],
    ['1.31.0', false],
    ['1.27.9', false],
    ['latest', false],
  ])('accepts %s: %s', (version, ok) => {
    expect(checkSupportedVersion(version).ok).toBe(ok);
  });
});

describe('parseChannelTable', () => {
  it('uses the built-in defaults for channels the ConfigMap does not set', () => {
    expect(parseChannelTable({ regular: '1.29.2' })).toEqual({
      table: { ...DEFAULT_CHANNEL_TABLE, regular: '1.29.2' },
      problems: [],
      invalid: {},
    });
  });

  it('returns the defaults when there is no ConfigMap data', () => {
    expect(parseChannelTable(undefined)).toEqual({
      table: { ...DEFAULT_CHANNEL_TABLE },
      problems: [],
      invalid: {},
    });
  });

  it('reports bad entries, ignores them and keeps the rest', () => {
    const result = parseChannelTable({
      regular: ' 1.29.3 ',
      rapid: 'v1.30',
      stable: '1.12.0',
      nightly: '1.31.0',
    });
    expect(result.table).toEqual({ ...DEFAULT_CHANNEL_TABLE, regular: '1.29.3' });
    expect(result.problems).toEqual([
      `channel 'rapid': 'v1.30' is not an Istio version of the form x.y.z; keeping ${DEFAULT_CHANNEL_TABLE.rapid}`,
      `channel 'stable': Istio 1.12.0 is not supported; meshrev supports Istio 1.28, 1.29, 1.30; keeping ${DEFAULT_CHANNEL_TABLE.stable}`,
      "unknown channel 'nightly' ignored; known channels are regular, rapid, stable",
    ]);
    expect(result.invalid).toEqual({
      rapid: "'v1.30' is not an Istio version of the form x.y.z",
      stable: 'Istio 1.12.0 is not supported; meshrev supports Istio 1.28, 1.29, 1.30',
    });
  });
});
