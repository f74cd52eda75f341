import { IsIn, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import type { Granularity } from './billing-calendar';

export class UsageQueryDto {
  /**
   * First Asia/Jakarta calendar day, `YYYY-MM-DD` (default: the first day of the current Jakarta month).
   * @example 2031-11-01
   */
  @IsOptional()
  @IsString()
  @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'from must be a date YYYY-MM-DD' })
  from?: string;

  /**
   * Last Asia/Jakarta calendar day, inclusive, `YYYY-MM-DD` (default: today in Jakarta).
   * @example 2031-11-30
   */
  @IsOptional()
  @IsString()
  @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'to must be a date YYYY-MM-DD' })
  to?: string;

  /** One record per Jakarta `day` (period `YYYY-MM-DD`) or `month` (period `YYYY-MM`). Default `day`. */
  @IsOptional()
  @IsIn(['day', 'month'])
  granularity?: Granularity;
}

export class AdminUsageQueryDto extends UsageQueryDto {
  /**
   * `ten_…`: one tenant; omitted: every tenant.
   * @example ten_0192f1a2b3c47d5e8f9a0b1c2d3e4f50
   */
  @IsOptional()
  @IsString()
  @MaxLength(64)
  tenantId?: string;
}

export class UsageRecordDto {
  /** The Asia/Jakarta day `YYYY-MM-DD` or month `YYYY-MM`. */
  period: string;
  /** Messages accepted (and charged) in the period. */
  messages: number;
  /** Their segments. */
  segments: number;
  /** Charged minus refunded in the period, as booked in the ledger (debits and refunds made in the period). */
  amount: number;
  /** Of the messages accepted in the period: now `delivered`. */
  delivered: number;
  /** Of the messages accepted in the period: now `failed`. */
  failed: number;
  /** Refunds booked in the period (a refund is booked when the failure or cancellation happens). */
  refunded: number;
  /** Of the messages accepted in the period: now `expired` (no final report within 72 hours). */
  expired: number;
  /** Of the messages accepted in the period: not final yet (scheduled, queued, submitted or pending). */
  pending: number;
}

export class AdminUsageRecordDto extends UsageRecordDto {
  /** `ten_…` */
  tenantId: string;
}

export class UsageListDto {
  data: UsageRecordDto[];
}

export class AdminUsageListDto {
  data: AdminUsageRecordDto[];
}
