import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { MAX_SCHEDULE_AHEAD_MS } from './messages.service';

/**
 * Who recently sent to a number: the messaging side of inbound SMS routing (src/dlr). Messages
 * belong to this module, so the question is asked here rather than in SQL elsewhere.
 */
@Injectable()
export class RecentRecipientsService {
  constructor(private readonly dataSource: DataSource) {}

  /**
   * The tenant (uuid), among `tenantIds`, whose message to `msisdn` through `providerAccountId` went
   * out last before `receivedAt` (when the reply arrived; a whole second, as the provider stamps it) and
   * at or after `since`; null when none did.
   * A message that went out after the reply cannot be what it answers: a poll that reads the inbox late
   * must not give one tenant's reply to another tenant who wrote to the number in between. The provider
   * stamps `receivedAt` with its own clock, so a send up to CLOCK_SKEW_MS after it still counts, but only
   * when none went out before it (and then the earliest of those).
   * "Went out" is `send_at` for a scheduled message and `created_at` otherwise; `scheduled` (not sent
   * yet) and `canceled` messages do not count. Read through `messages_recipient_idx`; the `created_at`
   * bound lets the index stop early (a message is scheduled at most MAX_SCHEDULE_AHEAD_MS after it was
   * created).
   */
  async lastSenderTo(
    providerAccountId: string,
    msisdn: string,
    since: Date,
    receivedAt: Date,
    tenantIds: readonly string[],
  ): Promise<string | null> {
    if (!providerAccountId || !msisdn || tenantIds.length === 0) return null;
    const rows: { tenant_id: string }[] = await this.dataSource.query(
      `SELECT tenant_id FROM messages
        WHERE provider_account_id = $1 AND msisdn = $2 AND tenant_id = ANY($3::uuid[])
          AND created_at >= $4 AND COALESCE(send_at, created_at) >= $5
          AND created_at <= $7 AND COALESCE(send_at, created_at) <= $7
          AND status NOT IN ('scheduled', 'canceled')
        ORDER BY COALESCE(send_at, created_at) <= $6 DESC,
                 CASE WHEN COALESCE(send_at, created_at) <= $6 THEN COALESCE(send_at, created_at) END DESC,
                 COALESCE(send_at, created_at), id DESC
        LIMIT 1`,
      [
        providerAccountId,
        msisdn,
        tenantIds,
        new Date(since.getTime() - MAX_SCHEDULE_AHEAD_MS),
        since,
        new Date(receivedAt.getTime() + STAMP_PRECISION_MS),
        new Date(receivedAt.getTime() + CLOCK_SKEW_MS),
      ],
    );
    return rows[0]?.tenant_id ?? null;
  }
}

/** How far the provider's clock (which stamps an inbound SMS) may be behind ours. */
const CLOCK_SKEW_MS = 5 * 60_000;
/** The provider stamps whole seconds: a send within the stamped second is before the reply. */
const STAMP_PRECISION_MS = 1000;
