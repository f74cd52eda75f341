/**
 * What a provider account's wallet (its `balance.php` answer) means for Gerbang: pure rules, table-tested
 * in wallet-rules.spec.ts. The poller (provider-wallet.service.ts) and the admin representation
 * (provider-accounts.service.ts) both read them, so the alert flag and the hold never disagree.
 */

/** An account is "expiring" this long before its provider validity ends. */
export const EXPIRY_WARNING_MS = 14 * 86_400_000;

/**
 * Why an account is in alert:
 * - `empty`: balance ≤ 0. Sends would come back as 50 (Saldo Habis): dispatch holds the account.
 * - `expired`: the validity has passed. Sends would come back as 51 (Periode Habis): dispatch holds it.
 * - `low_balance`: below the account's `lowBalanceThreshold` (and not empty).
 * - `expiring`: the validity ends within 14 days (and has not yet).
 */
export type WalletAlertReason = 'empty' | 'expired' | 'low_balance' | 'expiring';

export interface WalletReading {
  /** A decimal string as the provider wrote it (`125000.50`, `0`, `-5`). */
  balance: string;
  expiresAt: Date;
}

export interface WalletAssessment {
  reasons: WalletAlertReason[];
  /** Why dispatch must hold the account, or null when the wallet can pay. */
  hold: 'empty' | 'expired' | null;
}

const DECIMAL = /^(-?)([0-9]+)(?:\.([0-9]+))?$/;

/**
 * Compares a provider decimal with an integer threshold without floats: `balance < threshold`.
 * For a non-negative balance I + f (integer part I, 0 ≤ f < 1) and an integer T, I + f < T ⇔ I < T.
 */
export function decimalBelow(balance: string, threshold: number | bigint): boolean {
  const m = DECIMAL.exec(balance.trim());
  if (!m) throw new RangeError(`not a decimal: ${balance}`);
  const negative = m[1] === '-' && !/^0+$/.test(m[2] + (m[3] ?? ''));
  if (negative) return BigInt(threshold) >= 0n;
  return BigInt(m[2]) < BigInt(threshold);
}

/** `balance ≤ 0`. */
export function decimalIsEmpty(balance: string): boolean {
  const m = DECIMAL.exec(balance.trim());
  if (!m) throw new RangeError(`not a decimal: ${balance}`);
  return m[1] === '-' || /^0+$/.test(m[2] + (m[3] ?? ''));
}

export function assessWallet(reading: WalletReading, lowBalanceThreshold: number, now: Date): WalletAssessment {
  const reasons: WalletAlertReason[] = [];
  let hold: WalletAssessment['hold'] = null;
  if (decimalIsEmpty(reading.balance)) {
    reasons.push('empty');
    hold = 'empty';
  } else if (lowBalanceThreshold > 0 && decimalBelow(reading.balance, lowBalanceThreshold)) {
    reasons.push('low_balance');
  }
  const left = reading.expiresAt.getTime() - now.getTime();
  if (left <= 0) {
    reasons.push('expired');
    hold ??= 'expired';
  } else if (left <= EXPIRY_WARNING_MS) {
    reasons.push('expiring');
  }
  return { reasons, hold };
}
