/**
 * Currency rates for reporting revenue in USD. One source of truth: the business processor
 * writes these rows to the `fx_rates` table at start, so analysts see the rates it used.
 * Fixed reference rates (not live market data): a replay must give the same revenue, so rates
 * are versioned by `validFrom` and only ever added. Documented in docs/metrics.md.
 */
export interface FxRate {
  currency: string;
  /** USD per one major unit (1 NPR = 0.0075 USD). */
  usdPerUnit: number;
  /** Digits of the minor unit (cents: 2). */
  minorDigits: number;
  validFrom: string;
}

export const FX_SOURCE = 'StreamPulse reference rates 2026-11 (fixed, documented)';

export const FX_RATES: readonly FxRate[] = [
  { currency: 'USD', usdPerUnit: 1, minorDigits: 2, validFrom: '2020-01-01' },
  { currency: 'EUR', usdPerUnit: 1.08, minorDigits: 2, validFrom: '2020-01-01' },
  { currency: 'GBP', usdPerUnit: 1.27, minorDigits: 2, validFrom: '2020-01-01' },
  { currency: 'INR', usdPerUnit: 0.012, minorDigits: 2, validFrom: '2020-01-01' },
  { currency: 'NPR', usdPerUnit: 0.0075, minorDigits: 2, validFrom: '2020-01-01' },
  { currency: 'JPY', usdPerUnit: 0.0067, minorDigits: 0, validFrom: '2020-01-01' },
];

const BY_CURRENCY = new Map(FX_RATES.map((r) => [r.currency, r]));

/** Converts an amount in minor units to USD micro-dollars (rounded half away from zero). */
export function toUsdMicros(amountMinor: number, currency: string): number | null {
  const r = BY_CURRENCY.get(currency);
  if (!r) return null;
  return Math.round(amountMinor * r.usdPerUnit * 10 ** (6 - r.minorDigits));
}
