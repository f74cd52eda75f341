import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { toPublicId } from '../common/ids';
import { cursorField, decodeCursor, encodeCursor, ListQueryDto, Page } from '../common/pagination';
import { TenantScope } from '../common/tenant-scope';
import { inboundMessageDto } from './inbound-intake.service';
import { AdminInboundMessageDto, InboundMessageDto } from './inbound-messages.dto';

interface InboundRow {
  id: string;
  provider_account_id: string;
  tenant_id: string | null;
  route: 'account' | 'last_sender' | 'unrouted';
  msisdn: string;
  text: string;
  received_at: Date | null;
  raw: Record<string, string>;
  created_at: Date;
}

const COLUMNS = 'id, provider_account_id, tenant_id, route, msisdn, text, received_at, raw, created_at';

/** Reads of `inbound_messages`, newest first (by when the gateway stored them), cursor-paginated. */
@Injectable()
export class InboundMessagesService {
  constructor(private readonly dataSource: DataSource) {}

  async listForTenant(scope: TenantScope, q: ListQueryDto): Promise<Page<InboundMessageDto>> {
    const page = await this.page(['tenant_id = $1'], [scope.tenantId], q);
    return { data: page.rows.map(inboundMessageDto), nextCursor: page.nextCursor };
  }

  async listAll(q: ListQueryDto, unrouted: boolean | undefined): Promise<Page<AdminInboundMessageDto>> {
    const where = unrouted === undefined ? [] : [unrouted ? 'tenant_id IS NULL' : 'tenant_id IS NOT NULL'];
    const page = await this.page(where, [], q);
    return {
      data: page.rows.map((r) => ({
        ...inboundMessageDto(r),
        tenantId: r.tenant_id ? toPublicId('tenant', r.tenant_id) : null,
        route: r.route,
        storedAt: r.created_at,
        raw: r.raw,
      })),
      nextCursor: page.nextCursor,
    };
  }

  private async page(
    where: string[],
    params: unknown[],
    q: ListQueryDto,
  ): Promise<{ rows: InboundRow[]; nextCursor: string | null }> {
    const limit = q.limit ?? 50;
    // Each field is checked before it can reach PostgreSQL (a forged cursor is a 400, never a 500).
    const cursor = decodeCursor<{ t: string; id: string }>(q.cursor, { t: cursorField.time, id: cursorField.uuid });
    if (cursor) {
      params = [...params, new Date(cursor.t), cursor.id];
      where = [...where, `(created_at, id) < ($${params.length - 1}, $${params.length})`];
    }
    params = [...params, limit + 1];
    const rows: InboundRow[] = await this.dataSource.query(
      `SELECT ${COLUMNS} FROM inbound_messages ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      rows: page,
      nextCursor: rows.length > limit ? encodeCursor({ t: last.created_at.toISOString(), id: last.id }) : null,
    };
  }
}
