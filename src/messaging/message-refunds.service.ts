import { Injectable } from '@nestjs/common';
import { EntityManager } from 'typeorm';
import { LedgerService } from '../billing/ledger.service';
import { rows as sqlRows } from '../database/raw-rows';

/** A message whose refund was decided now: the ledger credits exactly these. */
export interface FlippedRefund {
  messageId: string;
  tenantId: string;
  price: number;
  /** When the message was accepted (= its debit): tells the ledger which validity period paid for it. */
  createdAt: Date;
}

/**
 * The refund flow of a message: messaging decides which messages are refunded (its own column,
 * `messages.refunded`), billing moves the money (LedgerService.creditRefunds), in the caller's
 * transaction and in the documented lock order: message rows by id, then tenants ascending.
 */
@Injectable()
export class MessageRefundsService {
  constructor(private readonly ledger: LedgerService) {}

  /** Refunds messages in full, exactly once each, inside the caller's transaction. Returns the ids refunded now. */
  async refund(m: EntityManager, messageIds: string[], now: Date): Promise<string[]> {
    const flipped = await this.markRefunded(m, messageIds);
    await this.ledger.creditRefunds(m, flipped, now);
    return flipped.map((f) => f.messageId);
  }

  /**
   * The guarded flip `refunded false -> true` of the messages that cost something. Exactly-once: a
   * concurrent second refund waits on the row lock and then matches nothing. Rows are locked in id
   * order (the subquery's ORDER BY comes before its row locks), so two refunds of overlapping sets
   * cannot deadlock on them; a row refunded meanwhile fails the recheck.
   */
  async markRefunded(m: EntityManager, messageIds: string[]): Promise<FlippedRefund[]> {
    if (messageIds.length === 0) return [];
    const flipped = await sqlRows<{ id: string; tenant_id: string; price: string; created_at: Date }>(
      m,
      `UPDATE messages m SET refunded = true
         FROM (SELECT id FROM messages
                WHERE id = ANY($1::uuid[]) AND refunded = false AND price > 0
                ORDER BY id FOR NO KEY UPDATE) l
        WHERE m.id = l.id AND m.refunded = false
        RETURNING m.id, m.tenant_id, m.price, m.created_at`,
      [messageIds],
    );
    return flipped.map((f) => ({
      messageId: f.id,
      tenantId: f.tenant_id,
      price: Number(f.price),
      createdAt: f.created_at,
    }));
  }
}
