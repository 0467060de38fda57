// Istio versions meshrev renders control planes for, and how a revision's version is chosen.
import { CHANNELS, type Channel, ISTIO_VERSION_PATTERN } from '../../crds/constants.js';

/**
 * Istio minor versions whose istio-discovery chart objects meshrev reproduces (checked against the
 * 1.28.10, 1.29.6 and 1.30.3 charts). Differences between them are handled where objects are built.
 */
export const SUPPORTED_MINOR_VERSIONS = ['1.28', '1.29', '1.30'] as const;

export type ChannelTable = Record<Channel, string>;

/** Built-in channel table, used for channels the operator's ConfigMap does not set. */
export const DEFAULT_CHANNEL_TABLE: Readonly<ChannelTable> = Object.freeze({
  stable: '1.28.10',
  regular: '1.29.6',
  rapid: '1.30.3',
});

const VERSION = new RegExp(ISTIO_VERSION_PATTERN);

export interface ParsedVersion {
  major: number;
  minor: number;
  patch: number;
}

export function parseVersion(version: string): ParsedVersion | undefined {
  if (!VERSION.test(version)) return undefined;
  const [major = 0, minor = 0, patch = 0] = version.split('-')[0]!.split('.').map(Number);
  return { major, minor, patch };
}

export function minorVersion(version: string): string | undefined {
  const parsed = parseVersion(version);
  return parsed === undefined ? undefined : `${parsed.major}.${parsed.minor}`;
}

/** True when the version is at least `major.minor` (pre-releases count as their minor). */
export function isAtLeastMinor(version: string, major: number, minor: number): boolean {
  const parsed = parseVersion(version);
  if (parsed === undefined) return false;
  return parsed.major > major || (parsed.major === major && parsed.minor >= minor);
}

export type VersionResolution =
  | { ok: true; version: string; channel?: Channel }
  | { ok: false; reason: 'UnknownChannel' | 'UnsupportedVersion' | 'InvalidSpec'; message: string };

export function checkSupportedVersion(version: string): VersionResolution {
  const minor = minorVersion(version);
  if (minor === undefined) {
    return {
      ok: false,
      reason: 'UnsupportedVersion',
      message: `'${version}' is not an Istio version of the form x.y.z`,
    };
  }
  if (!(SUPPORTED_MINOR_VERSIONS as readonly string[]).includes(minor)) {
    return {
      ok: false,
      reason: 'UnsupportedVersion',
      message: `Istio ${version} is not supported; meshrev supports Istio ${SUPPORTED_MINOR_VERSIONS.join(', ')}`,
    };
  }
  return { ok: true, version };
}

export function isChannel(value: string): value is Channel {
  return (CHANNELS as readonly string[]).includes(value);
}

export function resolveChannel(channel: string, table: Readonly<ChannelTable>): VersionResolution {
  if (!isChannel(channel)) {
    return {
      ok: false,
      reason: 'UnknownChannel',
      message: `channel '${channel}' is unknown; known channels are ${CHANNELS.join(', ')}`,
    };
  }
  const resolved = checkSupportedVersion(table[channel]);
  return resolved.ok ? { ok: true, version: resolved.version, channel } : resolved;
}

/** The version a revision runs: its pinned `version`, or its `channel` looked up in `table`. */
export function resolveRevisionVersion(
  spec: { version?: string | undefined; channel?: string | undefined },
  table: Readonly<ChannelTable>,
): VersionResolution {
  if (spec.version !== undefined && spec.channel !== undefined) {
    return { ok: false, reason: 'InvalidSpec', message: 'set exactly one of version and channel, not both' };
  }
  if (spec.version !== undefined) return checkSupportedVersion(spec.version);
  if (spec.channel !== undefined) return resolveChannel(spec.channel, table);
  return { ok: false, reason: 'InvalidSpec', message: 'set exactly one of version and channel' };
}

export interface ChannelTableParseResult {
  table: ChannelTable;
  /** Human-readable descriptions of ignored entries; the defaults stay in force for them. */
  problems: string[];
  /** Channels whose entry is present but unusable, with why: revisions on them hold their version. */
  invalid: Partial<Record<Channel, string>>;
}

/**
 * Reads the channel ConfigMap's `data` (`{ regular: "1.29.2", ... }`). Bad entries are reported and
 * ignored, so one typo cannot move every revision on a channel to a version meshrev cannot render.
 */
export function parseChannelTable(
  data: Record<string, string> | undefined,
  defaults: Readonly<ChannelTable> = DEFAULT_CHANNEL_TABLE,
): ChannelTableParseResult {
  const table: ChannelTable = { ...defaults };
  const problems: string[] = [];
  const invalid: Partial<Record<Channel, string>> = {};
  for (const [key, rawValue] of Object.entries(data ?? {})) {
    const value = rawValue.trim();
    if (!isChannel(key)) {
      problems.push(`unknown channel '${key}' ignored; known channels are ${CHANNELS.join(', ')}`);
      continue;
    }
    const check = checkSupportedVersion(value);
    if (!check.ok) {
      problems.push(`channel '${key}': ${check.message}; keeping ${table[key]}`);
      invalid[key] = check.message;
      continue;
    }
    table[key] = value;
  }
  return { table, problems, invalid };
}
