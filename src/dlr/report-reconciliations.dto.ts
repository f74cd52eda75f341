import { ApiProperty } from '@nestjs/swagger';
import { Matches } from 'class-validator';

export class ProviderReportQueryDto {
  /**
   * First day, `YYYY-MM-DD`, an Asia/Jakarta calendar day.
   * @example "2026-11-01"
   */
  @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'start must be YYYY-MM-DD' })
  start: string;

  /**
   * Last day, inclusive, `YYYY-MM-DD`, an Asia/Jakarta calendar day; at most 31 days after start.
   * @example "2026-11-30"
   */
  @Matches(/^\d{4}-\d{2}-\d{2}$/, { message: 'end must be YYYY-MM-DD' })
  end: string;
}

/** How many of each; the lists below hold at most the first 1,000 of each kind. */
export class ReconciliationCountsDto {
  /** Distinct message ids in the provider's report. */
  listed: number;
  /** Final statuses that had never arrived (callback or poll), applied now from the report. */
  applied: number;
  /** Ids the provider lists that no message of ours carries. */
  unknown: number;
  /** Our messages submitted in the range that the provider does not list. */
  missing: number;
  /** Messages whose final status here differs from the provider's final status. */
  statusDiffers: number;
  /** Messages the provider counted more SMS for (`sms_count`) than the segments we charged. */
  moreParts: number;
}

/** A send the provider lists that no message of ours carries (its text is not kept). */
export class UnknownSendDto {
  /** @example "18319370" */
  providerMessageId: string;
  /** The destination as the provider wrote it. */
  msisdn: string;
  /** When the provider sent it (its Jakarta time read as such), null if unreadable. */
  sentAt: Date | null;
  /** The provider's status code (22, 20, 50, 51, 52), null if the row has none. */
  providerStatusCode: number | null;
}

/** Both final, and they disagree. */
export class StatusDifferenceDto {
  /** `msg_…` */
  messageId: string;
  providerMessageId: string;
  /** Our status: `delivered`, `failed`, `expired` or `canceled`. */
  ours: string;
  /** The provider's: 22 is `delivered`, 50/51/52 are `failed`. */
  @ApiProperty({ enum: ['delivered', 'failed'] })
  theirs: 'delivered' | 'failed';
  providerStatusCode: number;
}

/** The provider counted (and charged us) more SMS than the segments we charged the tenant. */
export class MorePartsDto {
  /** `msg_…` */
  messageId: string;
  providerMessageId: string;
  /** Segments we charged. */
  segments: number;
  /** SMS the provider counted (`sms_count` in its report). */
  smsCount: number;
}

/** Our message, submitted in the range, that the provider's report does not list. */
export class MissingSendDto {
  /** `msg_…` */
  messageId: string;
  providerMessageId: string;
}

/** A kept reconciliation, without its mismatch rows (the list). */
export class ReconciliationSummaryDto {
  /** `rec_…` */
  id: string;
  /** `pac_…` */
  providerAccountId: string;
  /**
   * First Asia/Jakarta day reconciled.
   * @example "2026-11-29"
   */
  start: string;
  /**
   * Last Asia/Jakarta day reconciled (inclusive).
   * @example "2026-11-29"
   */
  end: string;
  /** `daily` (the previous Jakarta day, once per account) or `on_demand` (`GET …/report`). */
  @ApiProperty({ enum: ['daily', 'on_demand'] })
  trigger: 'daily' | 'on_demand';
  createdAt: Date;
  counts: ReconciliationCountsDto;
}

/** A kept reconciliation of the provider's report against our records, with its mismatches (first 1,000 of each kind). */
export class ReconciliationDto extends ReconciliationSummaryDto {
  unknown: UnknownSendDto[];
  statusDiffers: StatusDifferenceDto[];
  moreParts: MorePartsDto[];
  missing: MissingSendDto[];
}

/** The reconciliation just made and kept, with the provider's file as read. */
export class ProviderReportDto extends ReconciliationDto {
  /** The provider file's header row. */
  header: string[];
  /** Rows in the provider's file. */
  providerRows: number;
  /** The provider's rows as parsed (first 500). */
  rows: Array<Record<string, string>>;
}

/** A page of an account's kept reconciliations, newest first. */
export class ReconciliationPageDto {
  data: ReconciliationSummaryDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}
