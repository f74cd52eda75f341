/**
 * Fault knobs of the sandbox provider. Rates are probabilities 0..1 drawn from a seeded RNG, so a
 * test that runs its requests one after another sees the same faults on every run. A rate of 0 or 1
 * never draws, so setting one knob does not shift the random sequence of the others.
 */
export interface SandboxKnobs {
  /** Delay before any /masking/*.php answer, uniform in [min, max] ms. */
  latencyMs: [number, number];
  /** send: HTTP 500 before the message is taken (nothing sent). */
  http500Rate: number;
  /** send: the message IS taken (id, charge, DLRs) but the answer is an HTTP 500 — a proxy/script failure after the fact. */
  http500AfterAcceptRate: number;
  /** send: HTTP 200 with an HTML page (a PHP debug page that dumps the request) instead of an id; nothing sent. */
  htmlGarbageRate: number;
  /** send: HTTP 200 with an empty body; nothing sent. */
  emptyBodyRate: number;
  /** send: the message is taken (recorded, charged, DLRs flow) and the request is never answered. */
  blackholeRate: number;
  /** The final DLR callback is delivered twice. */
  duplicateDlrRate: number;
  /** A delivered message's callbacks arrive as 22 first, then a stale 20. */
  outOfOrderDlr: number;
  /** No callback at all for the message; only report.php knows its status. */
  dropDlrRate: number;
  /** Delay of each DLR after the previous event, uniform in [min, max] ms. */
  dlrDelayMs: [number, number];
  /** The first DLR callback is delivered (and answered) before the send response is written. */
  dlrBeforeSendAnswer: number;
  /**
   * send: the provider counts (and charges, and lists in reports_post.php's `sms_count`) one SMS more than
   * its own 160-character rule says: the billing discrepancy the reconciliation reports as `moreParts`.
   */
  smsOvercountRate: number;
  /** Shape of inbox.php (undocumented upstream): CSV with a header, JSON array, or `msisdn,date,text` lines. */
  inboxFormat: 'csv' | 'json' | 'lines';
}

export const DEFAULT_KNOBS: Readonly<SandboxKnobs> = Object.freeze({
  latencyMs: [0, 0],
  http500Rate: 0,
  http500AfterAcceptRate: 0,
  htmlGarbageRate: 0,
  emptyBodyRate: 0,
  blackholeRate: 0,
  duplicateDlrRate: 0,
  outOfOrderDlr: 0,
  dropDlrRate: 0,
  dlrDelayMs: [200, 1500],
  dlrBeforeSendAnswer: 0,
  smsOvercountRate: 0,
  inboxFormat: 'csv',
} as SandboxKnobs);

const RATE_KEYS = [
  'http500Rate',
  'http500AfterAcceptRate',
  'htmlGarbageRate',
  'emptyBodyRate',
  'blackholeRate',
  'duplicateDlrRate',
  'outOfOrderDlr',
  'dropDlrRate',
  'dlrBeforeSendAnswer',
  'smsOvercountRate',
] as const;
const RANGE_KEYS = ['latencyMs', 'dlrDelayMs'] as const;

/**
 * Validates a partial set of knobs from code, JSON or env. Booleans are accepted for rates
 * (true = 1), a single number for a range (n = [n, n]). Throws a RangeError naming the bad knob.
 */
export function normalizeKnobs(input: unknown): Partial<SandboxKnobs> {
  if (input === null || typeof input !== 'object' || Array.isArray(input))
    throw new RangeError('knobs must be an object');
  const out: Partial<SandboxKnobs> = {};
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
    if ((RATE_KEYS as readonly string[]).includes(key)) {
      const rate = typeof value === 'boolean' ? (value ? 1 : 0) : value;
      if (typeof rate !== 'number' || !(rate >= 0 && rate <= 1))
        throw new RangeError(`${key} must be a number in 0..1`);
      (out as Record<string, unknown>)[key] = rate;
    } else if ((RANGE_KEYS as readonly string[]).includes(key)) {
      const range = typeof value === 'number' ? [value, value] : value;
      if (
        !Array.isArray(range) ||
        range.length !== 2 ||
        !range.every((n) => typeof n === 'number' && n >= 0 && Number.isFinite(n)) ||
        range[0] > range[1]
      ) {
        throw new RangeError(`${key} must be [min, max] ms with 0 <= min <= max`);
      }
      (out as Record<string, unknown>)[key] = [range[0], range[1]];
    } else if (key === 'inboxFormat') {
      if (value !== 'csv' && value !== 'json' && value !== 'lines')
        throw new RangeError('inboxFormat must be csv, json or lines');
      out.inboxFormat = value;
    } else {
      throw new RangeError(`unknown knob ${key}`);
    }
  }
  return out;
}

/** mulberry32: tiny, fast, good enough for fault injection; deterministic for a seed. */
export class SeededRandom {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  reseed(seed: number): void {
    this.state = seed >>> 0;
  }

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** true with probability `rate`; 0 and 1 do not consume a draw. */
  chance(rate: number): boolean {
    if (rate <= 0) return false;
    if (rate >= 1) return true;
    return this.next() < rate;
  }

  /** Uniform integer in [min, max]; a degenerate range does not consume a draw. */
  between([min, max]: [number, number]): number {
    if (max <= min) return min;
    return Math.floor(min + this.next() * (max - min + 1));
  }
}
