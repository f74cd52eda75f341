import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

/**
 * Read-only questions other modules ask about `messages` (owned by messaging). It depends on nothing
 * but the database, so a module that MessagingModule itself imports (provider) can use it through
 * MessageReadsModule without an import cycle.
 */
@Injectable()
export class MessageReadsService {
  constructor(private readonly dataSource: DataSource) {}

  /** Our messages submitted through a provider account in [from, to): id and provider id. */
  async submittedThrough(
    providerAccountId: string,
    from: Date,
    to: Date,
  ): Promise<{ id: string; providerMessageId: string | null }[]> {
    // An empty id would match nothing in SQL, but say so: every read of messages is scoped.
    if (!providerAccountId) throw new Error('submittedThrough requires a provider account id');
    const rows: { id: string; provider_message_id: string | null }[] = await this.dataSource.query(
      `SELECT id, provider_message_id FROM messages
        WHERE provider_account_id = $1 AND submitted_at >= $2 AND submitted_at < $3`,
      [providerAccountId, from, to],
    );
    return rows.map((r) => ({ id: r.id, providerMessageId: r.provider_message_id }));
  }

  /** Which of these provider message ids of an account we know (have a message for). */
  async knownProviderIds(providerAccountId: string, providerMessageIds: string[]): Promise<Set<string>> {
    if (!providerAccountId) throw new Error('knownProviderIds requires a provider account id');
    if (providerMessageIds.length === 0) return new Set();
    const rows: { provider_message_id: string }[] = await this.dataSource.query(
      `SELECT provider_message_id FROM messages WHERE provider_account_id = $1 AND provider_message_id = ANY($2::text[])`,
      [providerAccountId, providerMessageIds],
    );
    return new Set(rows.map((r) => r.provider_message_id));
  }
}
