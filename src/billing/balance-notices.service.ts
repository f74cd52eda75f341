import { Injectable, Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { rows } from '../database/raw-rows';
import { inTransaction } from '../database/transaction';
import { WebhooksService } from '../webhooks/webhooks.service';
import { expiringNoticeDue, expiringNoticeEventId } from './balance-notices';

/**
 * `balance.expiring`: 7 days and 1 day before a tenant's `validUntil`, once each per validity period
 * (docs/billing.md "Notices"). `balance.low` is not here: it is decided where the balance is written
 * (LedgerService), in that transaction.
 *
 * Once, with any number of gateway processes running the job at the same time: each tenant is handled in
 * its own transaction under its row lock (`FOR NO KEY UPDATE`, the ledger's lock, so the notice sees the
 * validity a concurrent top-up committed), re-checked there against `tenants.expiring_notice_at` (the notice
 * point already sent; it only moves forward), and the event id derived from (tenant, validUntil, notice)
 * makes a second enqueue of the same notice a no-op delivery-wise anyway.
 */
@Injectable()
export class BalanceNoticesService {
  private readonly logger = new Logger(BalanceNoticesService.name);

  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
    private readonly webhooks: WebhooksService,
  ) {}

  /** Queues every `balance.expiring` notice that is due now. Returns how many were queued. */
  async notifyExpiring(batch = 100): Promise<number> {
    const now = this.clock.now();
    let queued = 0;
    let after = '00000000-0000-0000-0000-000000000000';
    for (;;) {
      // Candidates only (no lock): tenants with money whose validity ends within 7 days and whose latest
      // reached notice point has not been sent. Each is re-checked under its lock below.
      const due = await rows<{ id: string }>(
        this.dataSource,
        `SELECT id FROM tenants
          WHERE balance > 0 AND valid_until > $1::timestamptz AND valid_until <= $1::timestamptz + interval '7 days'
            AND id > $2
            AND (expiring_notice_at IS NULL OR expiring_notice_at <
                 CASE WHEN valid_until - interval '1 day' <= $1::timestamptz THEN valid_until - interval '1 day'
                      ELSE valid_until - interval '7 days' END)
          ORDER BY id LIMIT $3`,
        [now, after, batch],
      );
      for (const { id } of due) {
        try {
          if (await this.notifyTenant(id)) queued++;
        } catch (e) {
          // One tenant's failure must not skip the others; the next run retries it.
          this.logger.error({ tenantId: id, err: (e as Error).message }, 'balance.expiring notice failed');
        }
      }
      if (due.length < batch) return queued;
      after = due[due.length - 1].id;
    }
  }

  private notifyTenant(tenantId: string): Promise<boolean> {
    return inTransaction(this.dataSource, async (m) => {
      const now = this.clock.now();
      const [tenant] = await rows<{
        balance: string;
        valid_until: Date | null;
        grace_until: Date | null;
        expiring_notice_at: Date | null;
      }>(
        m,
        `SELECT balance, valid_until, grace_until, expiring_notice_at FROM tenants WHERE id = $1 FOR NO KEY UPDATE`,
        [tenantId],
      );
      if (!tenant || Number(tenant.balance) <= 0) return false;
      const notice = expiringNoticeDue(now, tenant.valid_until);
      if (!notice || !tenant.valid_until) return false;
      if (tenant.expiring_notice_at && tenant.expiring_notice_at >= notice.at) return false; // sent already
      await m.query(`UPDATE tenants SET expiring_notice_at = $2 WHERE id = $1`, [tenantId, notice.at]);
      await this.webhooks.enqueue(m, [
        {
          tenantId,
          type: 'balance.expiring',
          eventId: expiringNoticeEventId(tenantId, tenant.valid_until, notice.days),
          occurredAt: now,
          data: {
            balance: Number(tenant.balance),
            validUntil: tenant.valid_until.toISOString(),
            graceUntil: tenant.grace_until?.toISOString() ?? null,
          },
        },
      ]);
      return true;
    });
  }
}
