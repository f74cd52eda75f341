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
   * out last at or after `since`; null when none did. "Went out" is `send_at` for a scheduled
   * message and `created_at` otherwise; `scheduled` (not sent yet) and `canceled` messages do not count.
   * Read through `messages_recipient_idx`; the `created_at` bound lets the index stop early
   * (a message is scheduled at most MAX_SCHEDULE_AHEAD_MS after it was created).
   */
  async lastSenderTo(
    providerAccountId: string,
    msisdn: string,
    since: Date,
    tenantIds: readonly string[],
  ): Promise<string | null> {
    if (!providerAccountId || !msisdn || tenantIds.length === 0) return null;
    const rows: { tenant_id: string }[] = await this.dataSource.query(
      `SELECT tenant_id FROM messages
        WHERE provider_account_id = $1 AND msisdn = $2 AND tenant_id = ANY($3::uuid[])
          AND created_at >= $4 AND COALESCE(send_at, created_at) >= $5
          AND status NOT IN ('scheduled', 'canceled')
        ORDER BY COALESCE(send_at, created_at) DESC, id DESC
        LIMIT 1`,
      [providerAccountId, msisdn, tenantIds, new Date(since.getTime() - MAX_SCHEDULE_AHEAD_MS), since],
    );
    return rows[0]?.tenant_id ?? null;
  }
}
