import { Inject, Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { toPublicId, uuidv7 } from '../common/ids';
import { normalizeMsisdn } from '../messaging';
import { RecentRecipientsService } from '../messaging/recent-recipients.service';
import { storableText, type InboxItem } from '../provider/client';
import { TenantsService } from '../tenants/tenants.service';
import { INBOUND_EVENTS, InboundEvents } from './inbound-events';
import { inboundDuplicates, inboundStored, inboundUnrouted } from './inbound-metrics';
import { InboundMessageDto } from './inbound-messages.dto';
import { inboxDedupeKeys } from './inbox-dedupe';

/** A reply is attributed to a tenant that sent to the number at most this long before it arrived. */
export const LAST_SENDER_WINDOW_MS = 7 * 86400_000;

export type InboundRoute =
  | { route: 'account'; tenantId: string }
  | { route: 'last_sender'; tenantId: string }
  | { route: 'unrouted'; tenantId: null };

export interface IntakeResult {
  /** New rows stored by this call. */
  stored: number;
  /** Rows already stored (by an earlier poll, or concurrently by another process). */
  duplicates: number;
  /** Of `stored`, those without a tenant. */
  unrouted: number;
}

interface InsertedRow {
  id: string;
  tenant_id: string | null;
  msisdn: string;
  text: string;
  received_at: Date | null;
  created_at: Date;
}

/**
 * Stores the rows of one inbox.php answer: deduplicated, raw row kept, routed to a tenant, and the
 * routed ones announced through InboundEvents in the same transaction. The only writer of
 * `inbound_messages`.
 */
@Injectable()
export class InboundIntakeService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly tenants: TenantsService,
    private readonly recentRecipients: RecentRecipientsService,
    @Inject(INBOUND_EVENTS) private readonly events: InboundEvents,
  ) {}

  async store(providerAccountId: string, items: readonly InboxItem[], now: Date): Promise<IntakeResult> {
    if (items.length === 0) return { stored: 0, duplicates: 0, unrouted: 0 };
    const keys = inboxDedupeKeys(items);
    // Rows already stored are skipped before routing (most of a polled inbox is old rows);
    // ON CONFLICT below still settles a race with another process reading the same inbox.
    const known: { dedupe_key: string }[] = await this.dataSource.query(
      `SELECT dedupe_key FROM inbound_messages WHERE provider_account_id = $1 AND dedupe_key = ANY($2::text[])`,
      [providerAccountId, keys],
    );
    const knownKeys = new Set(known.map((r) => r.dedupe_key));
    const fresh = items.map((item, i) => ({ item, key: keys[i] })).filter(({ key }) => !knownKeys.has(key));
    if (fresh.length === 0) {
      inboundDuplicates.inc(items.length);
      return { stored: 0, duplicates: items.length, unrouted: 0 };
    }

    const candidates = await this.tenants.idsOnProviderAccount(providerAccountId);
    const rows: { id: string; key: string; from: string; item: InboxItem; route: InboundRoute }[] = [];
    for (const { item, key } of fresh) {
      const from = senderOf(item.msisdn);
      // Provider time is trusted for the window only when it is not in the future.
      const receivedAt = item.receivedAt && item.receivedAt.getTime() <= now.getTime() ? item.receivedAt : now;
      const route = await this.route(providerAccountId, from, receivedAt, candidates);
      rows.push({ id: uuidv7(), key, from, item, route });
    }

    const inserted = await this.dataSource.transaction(async (m) => {
      const stored: InsertedRow[] = await m.query(
        `INSERT INTO inbound_messages (id, provider_account_id, msisdn, text, received_at, dedupe_key, raw,
                                       tenant_id, route, routed_at, created_at)
         SELECT r.id, $1, r.msisdn, r.text, r.received_at, r.dedupe_key, r.raw, r.tenant_id, r.route,
                CASE WHEN r.tenant_id IS NULL THEN NULL ELSE $2::timestamptz END, $2
           FROM unnest($3::uuid[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::jsonb[], $9::uuid[], $10::text[])
                AS r(id, msisdn, text, received_at, dedupe_key, raw, tenant_id, route)
         ON CONFLICT (provider_account_id, dedupe_key) DO NOTHING
         RETURNING id, tenant_id, msisdn, text, received_at, created_at`,
        [
          providerAccountId,
          now,
          rows.map((r) => r.id),
          rows.map((r) => storableText(r.from)),
          rows.map((r) => storableText(r.item.text)),
          rows.map((r) => r.item.receivedAt ?? null),
          rows.map((r) => r.key),
          rows.map((r) => JSON.stringify(storableFields(r.item.fields))),
          rows.map((r) => r.route.tenantId),
          rows.map((r) => r.route.route),
        ],
      );
      for (const row of stored) {
        if (row.tenant_id === null) continue;
        await this.events.received(m, {
          tenantId: row.tenant_id,
          inboundMessageId: row.id,
          message: inboundMessageDto({ ...row, provider_account_id: providerAccountId }),
          occurredAt: now,
        });
      }
      return stored;
    });

    const unrouted = inserted.filter((r) => r.tenant_id === null).length;
    const result = { stored: inserted.length, duplicates: items.length - inserted.length, unrouted };
    inboundStored.inc(result.stored);
    inboundDuplicates.inc(result.duplicates);
    inboundUnrouted.inc(result.unrouted);
    return result;
  }

  /**
   * The routing rule (docs/dlr.md): the only tenant on the account gets it; of several, the one
   * that last sent to this number through the account within 7 days before it arrived (a send after it
   * cannot be what it answers, give or take the provider's clock); else nobody.
   */
  async route(
    providerAccountId: string,
    from: string,
    receivedAt: Date,
    candidates: readonly string[],
  ): Promise<InboundRoute> {
    if (candidates.length === 1) return { route: 'account', tenantId: candidates[0] };
    if (candidates.length > 1) {
      const since = new Date(receivedAt.getTime() - LAST_SENDER_WINDOW_MS);
      const tenantId = await this.recentRecipients.lastSenderTo(providerAccountId, from, since, receivedAt, candidates);
      if (tenantId) return { route: 'last_sender', tenantId };
    }
    return { route: 'unrouted', tenantId: null };
  }
}

/**
 * Provider text is stored as received, minus what PostgreSQL cannot store (NUL, lone surrogates:
 * `storableText`): one such row must not make an account's inbox unstorable on every poll. The dedupe
 * key is taken from the row as received, before this.
 */
function storableFields(fields: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(fields).map(([k, v]) => [storableText(k), storableText(v)]));
}

/** `62…` digits for an Indonesian mobile number (as messages store recipients), else the provider's text. */
function senderOf(msisdn: string): string {
  const normalized = normalizeMsisdn(msisdn);
  return normalized.ok ? normalized.msisdn : msisdn.trim();
}

export function inboundMessageDto(row: {
  id: string;
  provider_account_id: string;
  msisdn: string;
  text: string;
  received_at: Date | null;
  created_at: Date;
}): InboundMessageDto {
  return {
    id: toPublicId('inbound', row.id),
    from: row.msisdn,
    text: row.text,
    receivedAt: row.received_at ?? row.created_at,
    providerAccountId: toPublicId('providerAccount', row.provider_account_id),
  };
}
