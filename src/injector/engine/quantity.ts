// Kubernetes resource quantities in their canonical string form. istiod round-trips every resource value
// through Go's resource.Quantity, so `2000m` becomes `2` and `1024Mi` becomes `1Gi`; the engine emits the same.
import { boundedMemo } from './memo.js';

const DECIMAL_SUFFIX_EXPONENT: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};
const BINARY_SUFFIX_POWER: Readonly<Record<string, number>> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const BINARY_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'];
const QUANTITY = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE])?$/;

/** True when Go's resource.ParseQuantity would accept the value. */
export function isValidQuantity(value: string): boolean {
  const match = QUANTITY.exec(value);
  return match !== null && ((match[2] ?? '') !== '' || (match[3] ?? '') !== '');
}

function decimalCanonical(sign: string, amount: bigint, exponent: number, exponentFormat: boolean): string {
  if (amount === 0n) return '0';
  while (amount % 10n === 0n) {
    amount /= 10n;
    exponent += 1;
  }
  // Go keeps nano precision at most, rounding up.
  if (exponent < -9) {
    const divisor = 10n ** BigInt(-9 - exponent);
    amount = (amount + divisor - 1n) / divisor;
    exponent = -9;
    while (amount % 10n === 0n) {
      amount /= 10n;
      exponent += 1;
    }
  }
  const remainder = ((exponent % 3) + 3) % 3;
  amount *= 10n ** BigInt(remainder);
  exponent -= remainder;
  const number = `${sign}${amount.toString()}`;
  if (exponentFormat) return exponent === 0 ? number : `${number}e${exponent}`;
  const suffix = Object.entries(DECIMAL_SUFFIX_EXPONENT).find(([, e]) => e === exponent)?.[0];
  return suffix === undefined ? `${number}e${exponent}` : number + suffix;
}

/**
 * Canonical forms already computed. A mesh uses a handful of distinct quantities (the proxy's requests and limits,
 * a few per-pod annotations), and every admission canonicalises them again with BigInt arithmetic; the bound
 * keeps a client sending endless distinct values from growing it.
 */
const canonicalOf = boundedMemo(1024, computeCanonicalQuantity);

/** Returns the canonical form of a quantity, or the input unchanged when it does not parse. */
export function canonicalQuantity(value: string | number): string {
  // A number is read exactly as its decimal text would be.
  return canonicalOf(String(value));
}

function computeCanonicalQuantity(value: string): string {
  const text = value.trim();
  const match = QUANTITY.exec(text);
  if (!match || ((match[2] ?? '') === '' && (match[3] ?? '') === '')) return value;
  const sign = match[1] === '-' ? '-' : '';
  const whole = match[2] ?? '';
  const fraction = match[3] ?? '';
  const suffix = match[4] ?? '';
  let amount = BigInt((whole + fraction).replace(/^0+(?=.)/, '') || '0');
  let exponent = -fraction.length;

  const power = BINARY_SUFFIX_POWER[suffix];
  if (power !== undefined) {
    const scaled = amount * 1024n ** BigInt(power);
    const divisor = 10n ** BigInt(fraction.length);
    if (scaled % divisor === 0n && scaled / divisor >= 1024n) {
      let integer = scaled / divisor;
      let factors = 0;
      while (factors < 6 && integer % 1024n === 0n) {
        integer /= 1024n;
        factors += 1;
      }
      return `${sign}${integer.toString()}${BINARY_SUFFIXES[factors] ?? ''}`;
    }
    return decimalCanonical(sign, scaled, exponent, false);
  }
  if (suffix.startsWith('e') || suffix.startsWith('E')) {
    exponent += Number(suffix.slice(1));
    return decimalCanonical(sign, amount, exponent, true);
  }
  exponent += DECIMAL_SUFFIX_EXPONENT[suffix] ?? 0;
  amount = amount < 0n ? -amount : amount;
  return decimalCanonical(sign, amount, exponent, false);
}

/** Canonicalises every quantity in a `{limits, requests}` block; other keys are kept as they are. */
export function canonicalResources<T extends Record<string, unknown>>(resources: T): T {
  const out: Record<string, unknown> = { ...resources };
  for (const key of ['limits', 'requests', 'claims']) {
    const block = out[key];
    if (key !== 'claims' && typeof block === 'object' && block !== null && !Array.isArray(block)) {
      out[key] = Object.fromEntries(
        Object.entries(block).map(([name, q]) => [
          name,
          typeof q === 'string' || typeof q === 'number' ? canonicalQuantity(q) : q,
        ]),
      );
    }
  }
  return out as T;
}
