import { IsOptional, IsString, MaxLength, MinLength, Matches } from 'class-validator';
import { IsAmount } from '../common/validation';
import type { LedgerKind } from './ledger-entry.entity';
import type { BalanceState } from './validity';

export class TopUpDto {
  /**
   * Positive integer, in the smallest currency unit.
   * @example 500000
   */
  @IsAmount()
  amount: number;

  /**
   * Your reference, e.g. an invoice number.
   * @example "INV-2026-0042"
   */
  @IsOptional()
  @IsString()
  @MaxLength(200)
  reference?: string;
}

export class AdjustmentDto {
  /**
   * Signed non-zero integer; a negative adjustment may not exceed the balance.
   * @example -1500
   */
  @IsAmount({ signed: true })
  amount: number;

  /**
   * Why: kept on the ledger entry as its reference.
   * @example "refund for a provider outage on 2026-11-29"
   */
  @IsString()
  @MinLength(1)
  @MaxLength(500)
  @Matches(/\S/, { message: 'reason must not be blank' })
  reason: string;
}

export class LedgerEntryDto {
  /** `led_…` */
  id: string;
  kind: LedgerKind;
  /** Signed: credits positive, debits negative. The sum of all entries is the balance. */
  amount: number;
  balanceAfter: number;
  /** `msg_…` for debits and refunds. */
  messageId?: string;
  reference?: string;
  /** Top-ups: the validity they set. */
  validUntil?: Date;
  graceUntil?: Date;
  createdAt: Date;
}

export class BalanceDto {
  balance: number;
  /** Spendable until then. */
  validUntil: Date | null;
  /** Kept (not spendable) until then; forfeited at this moment. */
  graceUntil: Date | null;
  /** `empty`: nothing to spend; `active`: spendable; `grace`: kept, sends refused with `balance_expired`; `expired`: forfeited. */
  state: BalanceState;
}

export class LedgerMovementDto {
  entry: LedgerEntryDto;
  balance: BalanceDto;
}

/** A page of ledger entries, newest first. */
export class LedgerEntryPageDto {
  data: LedgerEntryDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}
