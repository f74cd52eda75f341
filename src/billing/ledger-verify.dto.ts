export type LedgerProblemCode =
  | 'balance_mismatch'
  | 'negative_balance'
  | 'chain_broken'
  | 'missing_debit'
  | 'duplicate_debit'
  | 'wrong_debit'
  | 'missing_refund'
  | 'duplicate_refund'
  | 'wrong_refund'
  | 'unexpected_refund'
  | 'refund_flag_mismatch'
  | 'foreign_message'
  | 'balance_after_expiry';

export class LedgerProblemDto {
  /** What is wrong: see docs/billing.md "Proof of the books". */
  code: LedgerProblemCode;
  /** `ten_…` */
  tenantId: string;
  /** `msg_…`, for problems of one message. */
  messageId?: string;
  /** `led_…`, for problems of one ledger entry. */
  ledgerEntryId?: string;
  /** One line for a human, e.g. `balance 900 but the ledger sums to 1000`. */
  detail: string;
}

export class LedgerVerifyDto {
  /** True when no problem was found. */
  ok: boolean;
  /** Tenants checked. */
  tenants: number;
  /** Ledger entries checked. */
  entries: number;
  problems: LedgerProblemDto[];
}
