import { Problem } from '../common/problem';
import { BalanceState } from './validity';

/**
 * Billing's decisions about charging a message, in one place: what it costs and whether the tenant may be
 * charged for it now. Send, batch (messaging/accept.service.ts) and preview (messages.service.ts) use these;
 * the money itself moves only in LedgerService.
 */

/** API.md "Message": `price` = `segments` × the tenant's price per segment. */
export function messagePrice(segments: number, pricePerSegment: number): number {
  return segments * pricePerSegment;
}

/** The tenant as the charging transaction sees it under its lock (LedgerService.lockForCharging). */
export interface ChargeableTenant {
  status: string;
  state: BalanceState;
  validUntil: Date | null;
}

/**
 * Whether the tenant may be charged at all, and why not, for every message of one charging transaction:
 * `tenant_suspended` first, then `balance_expired` (validity lapsed: in grace the balance is kept but not
 * spendable; after grace it is forfeited), then per message `insufficient_balance` (see `refusal`).
 */
export class ChargePolicy {
  private readonly lapsed: boolean;

  constructor(
    private readonly tenant: ChargeableTenant,
    now: Date,
  ) {
    this.lapsed =
      tenant.state === 'grace' ||
      tenant.state === 'expired' ||
      (tenant.validUntil !== null && now >= tenant.validUntil);
  }

  /** Why a message of `price` cannot be charged against `balance` now, or null if it can. */
  refusal(balance: number, price: number): Problem | null {
    if (this.tenant.status !== 'active') {
      return new Problem('tenant_suspended', 'This tenant is suspended; sending is disabled');
    }
    if (this.lapsed) return new Problem('balance_expired', 'The balance validity has lapsed; top up to restore it');
    if (!Number.isSafeInteger(price))
      return new Problem('validation_failed', 'The price of this message is out of range');
    if (price > balance) {
      return new Problem('insufficient_balance', `This message costs ${price}; the balance is ${balance}`);
    }
    return null;
  }
}
