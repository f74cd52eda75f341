import { Inject, Injectable } from '@nestjs/common';
import { rows as sqlRows } from '../database/raw-rows';
import { DataSource } from 'typeorm';
import { inTransaction } from '../database/transaction';
import { messagePrice } from '../billing';
import { LedgerService } from '../billing/ledger.service';
import { Clock } from '../common/clock';
import { parseInstant } from '../common/instant';
import { fromPublicId } from '../common/ids';
import { cursorField, decodeCursor, encodeCursor, Page } from '../common/pagination';
import { Problem, notFound } from '../common/problem';
import { TenantScope } from '../common/tenant-scope';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { AcceptItem, AcceptService, IdempotencyCompletion, ItemResult, problemResponse } from './accept.service';
import { normalizeMsisdn } from './domain/msisdn';
import { MAX_SEGMENTS_DEFAULT, countSegments } from './domain/segments';
import { IdempotencyService, RequestHashes } from '../idempotency/idempotency.service';
import type { MessageDto } from './message.dto';
import { MESSAGE_COLUMNS, MessageRow } from './message.row';
import { messageDto } from './message.view';
import {
  BatchItemDto,
  BatchResultDto,
  ListMessagesQueryDto,
  MAX_TEXT_LENGTH,
  PreviewResultDto,
  RejectedItemDto,
  SendMessageDto,
} from './messages.dto';
import { TenantSettingsCache } from './tenant-settings.cache';
import { MessageEventsService } from './message-events.service';
import { MessageRefundsService } from './message-refunds.service';

/** How far ahead `sendAt` may be. */
export const MAX_SCHEDULE_AHEAD_MS = 35 * 86400_000;

export interface HttpResult<T> {
  status: number;
  body: T;
  replayed?: boolean;
}

@Injectable()
export class MessagesService {
  private readonly maxSegments: number;

  constructor(
    private readonly dataSource: DataSource,
    private readonly accept: AcceptService,
    private readonly idempotency: IdempotencyService,
    private readonly ledger: LedgerService,
    private readonly settings: TenantSettingsCache,
    private readonly messageEvents: MessageEventsService,
    private readonly refunds: MessageRefundsService,
    private readonly clock: Clock,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.maxSegments = (config as AppConfig & { maxSegments?: number }).maxSegments ?? MAX_SEGMENTS_DEFAULT;
  }

  /** Validates and counts one message; a Problem for what a tenant must fix. */
  prepare(input: {
    to: string;
    text: string;
    reference?: string | null;
    sendAt?: string | null;
  }): AcceptItem | Problem {
    const msisdn = normalizeMsisdn(input.to);
    if (!msisdn.ok) {
      return new Problem('invalid_msisdn', msisdn.reason, [{ field: 'to', message: msisdn.reason }]);
    }
    // NUL and lone surrogates never get here: the global validation pipe refuses them in any body.
    if (input.text.length > MAX_TEXT_LENGTH) {
      // A batch item's text is not bounded by its DTO (messages.dto.ts): too long is a per-item refusal.
      return new Problem('validation_failed', `text may be at most ${MAX_TEXT_LENGTH} characters`, [
        { field: 'text', message: `at most ${MAX_TEXT_LENGTH} characters` },
      ]);
    }
    const count = countSegments(input.text);
    if (count.billedSegments > this.maxSegments) {
      return new Problem(
        'validation_failed',
        `text needs ${count.billedSegments} segments; at most ${this.maxSegments} are allowed`,
        [{ field: 'text', message: `needs ${count.billedSegments} segments; at most ${this.maxSegments}` }],
      );
    }
    let sendAt: Date | null = null;
    // null is no schedule, as the DTO's @IsOptional reads it (and as reference: null is no reference).
    if (input.sendAt !== undefined && input.sendAt !== null) {
      // UTC unless it carries an offset, whatever the host's time zone (common/instant.ts).
      sendAt = parseInstant(input.sendAt);
      const now = this.clock.now().getTime();
      if (sendAt === null || sendAt.getTime() <= now) {
        return new Problem('validation_failed', 'sendAt must be in the future', [
          { field: 'sendAt', message: 'must be in the future' },
        ]);
      }
      if (sendAt.getTime() > now + MAX_SCHEDULE_AHEAD_MS) {
        return new Problem('validation_failed', 'sendAt may be at most 35 days ahead', [
          { field: 'sendAt', message: 'at most 35 days ahead' },
        ]);
      }
    }
    return {
      msisdn: msisdn.msisdn,
      text: input.text,
      reference: input.reference ?? null,
      segments: count.billedSegments,
      encoding: count.encoding,
      sendAt,
    };
  }

  async send(
    scope: TenantScope,
    dto: SendMessageDto,
    idempotencyKey: string | undefined,
    requestHash: RequestHashes,
  ): Promise<HttpResult<unknown>> {
    // The key is looked up before the body is judged: a replay returns the stored answer even if the
    // same request would be refused now (e.g. its sendAt has passed meanwhile).
    return this.withIdempotency(
      scope,
      idempotencyKey,
      requestHash,
      async (completion) => {
        const item = this.prepare(dto);
        if (item instanceof Problem) throw item;
        const [result] = await this.accept.accept(scope.tenantId, [item], completion);
        return singleResponse(result);
      },
      (results) => singleResponse(results[0]),
    );
  }

  async sendBatch(
    scope: TenantScope,
    items: BatchItemDto[],
    idempotencyKey: string | undefined,
    requestHash: RequestHashes,
  ): Promise<HttpResult<unknown>> {
    const prepared: AcceptItem[] = [];
    const indexes: number[] = [];
    const early: RejectedItemDto[] = [];
    const respond = (results: ItemResult[]) => batchResponse(results, indexes, early);
    return this.withIdempotency(
      scope,
      idempotencyKey,
      requestHash,
      async (completion) => {
        // Judged after the key lookup, as in send().
        items.forEach((it, index) => {
          const p = this.prepare(it);
          if (p instanceof Problem) early.push({ index, code: p.code, detail: p.detail ?? p.title });
          else {
            prepared.push(p);
            indexes.push(index);
          }
        });
        // With nothing to charge, the transaction still records the key's response so a retry replays it.
        const results =
          prepared.length > 0 || completion ? await this.accept.accept(scope.tenantId, prepared, completion) : [];
        return respond(results);
      },
      respond,
    );
  }

  private async withIdempotency(
    scope: TenantScope,
    key: string | undefined,
    requestHash: RequestHashes,
    run: (completion?: IdempotencyCompletion) => Promise<HttpResult<unknown>>,
    respond: (r: ItemResult[]) => { status: number; body: unknown },
  ): Promise<HttpResult<unknown>> {
    if (key !== undefined) IdempotencyService.validateKey(key);
    return this.idempotency.run(scope.tenantId, key, requestHash, (claim) =>
      run(claim && { key: claim.key, owner: claim.owner, respond }),
    );
  }

  async preview(scope: TenantScope, to: string | null | undefined, text: string): Promise<PreviewResultDto> {
    const result: Partial<PreviewResultDto> = {};
    // null is no number, as the DTO's @IsOptional reads it.
    if (to !== undefined && to !== null) {
      const m = normalizeMsisdn(to);
      if (!m.ok) throw new Problem('invalid_msisdn', m.reason, [{ field: 'to', message: m.reason }]);
      result.to = m.msisdn;
    }
    const count = countSegments(text);
    const { pricePerSegment } = await this.settings.get(scope.tenantId);
    return {
      encoding: count.encoding,
      segments: count.billedSegments,
      price: messagePrice(count.billedSegments, pricePerSegment),
      characters: count.characters,
      nonGsmCharacters: count.nonGsmCharacters.slice(0, 100),
      ...result,
    };
  }

  async get(scope: TenantScope, publicId: string): Promise<MessageDto> {
    const id = fromPublicId('message', publicId);
    if (!id) throw notFound('Message');
    const rows: MessageRow[] = await this.dataSource.query(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE id = $1 AND tenant_id = $2`,
      [id, scope.tenantId],
    );
    if (rows.length === 0) throw notFound('Message');
    return messageDto(rows[0]);
  }

  async list(scope: TenantScope, q: ListMessagesQueryDto): Promise<Page<MessageDto>> {
    const limit = q.limit ?? 50;
    const where: string[] = ['tenant_id = $1'];
    const params: unknown[] = [scope.tenantId];
    const add = (sql: string, v: unknown) => {
      params.push(v);
      where.push(sql.replace('?', `$${params.length}`));
    };
    if (q.status) {
      // Internal states map onto public ones (message.view.ts publicStatus).
      const internal =
        q.status === 'queued'
          ? ['queued', 'submitting']
          : q.status === 'submitted'
            ? ['submitted', 'uncertain']
            : [q.status];
      add('status = ANY(?::text[])', internal);
    }
    if (q.to) {
      const m = normalizeMsisdn(q.to);
      if (!m.ok) throw new Problem('invalid_msisdn', m.reason, [{ field: 'to', message: m.reason }]);
      add('msisdn = ?', m.msisdn);
    }
    if (q.reference) add('reference = ?', q.reference);
    // Validated as readable (IsReadableInstant); UTC unless they carry an offset.
    if (q.createdFrom) add('created_at >= ?', parseInstant(q.createdFrom));
    if (q.createdTo) add('created_at <= ?', parseInstant(q.createdTo));
    const cursor = decodeCursor<{ t: string; id: string }>(q.cursor, { t: cursorField.time, id: cursorField.uuid });
    if (cursor) {
      params.push(new Date(cursor.t), cursor.id);
      where.push(`(created_at, id) < ($${params.length - 1}, $${params.length})`);
    }
    params.push(limit + 1);
    const rows: MessageRow[] = await this.dataSource.query(
      `SELECT ${MESSAGE_COLUMNS} FROM messages WHERE ${where.join(' AND ')} ORDER BY created_at DESC, id DESC LIMIT $${params.length}`,
      params,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      data: page.map(messageDto),
      nextCursor: rows.length > limit ? encodeCursor({ t: last.created_at.toISOString(), id: last.id }) : null,
    };
  }

  /**
   * Cancels a `scheduled` message and refunds it, in one transaction. Anything else: 409.
   * Lock order (docs/data-model.md): the message row, then the tenant row (FOR NO KEY UPDATE), then
   * the inserts that reference them. Rerun on deadlock/serialization failure, never a 500.
   */
  async cancel(scope: TenantScope, publicId: string): Promise<MessageDto> {
    const id = fromPublicId('message', publicId);
    if (!id) throw notFound('Message');
    return inTransaction(this.dataSource, async (m) => {
      const now = this.clock.now();
      const rows = await sqlRows<MessageRow>(
        m,
        `UPDATE messages SET status = 'canceled', finalized_at = $3, next_attempt_at = $3
          WHERE id = $1 AND tenant_id = $2 AND status = 'scheduled' RETURNING ${MESSAGE_COLUMNS}`,
        [id, scope.tenantId, now],
      );
      if (rows.length === 0) {
        const exists: unknown[] = await m.query(`SELECT 1 FROM messages WHERE id = $1 AND tenant_id = $2`, [
          id,
          scope.tenantId,
        ]);
        if (exists.length === 0) throw notFound('Message');
        throw new Problem('conflict', 'Only a scheduled message can be canceled');
      }
      await this.ledger.lockTenants(m, [scope.tenantId]);
      await this.messageEvents.record(m, [{ messageId: id, tenantId: scope.tenantId, status: 'canceled' }], now);
      const refunded = await this.refunds.refund(m, [id], now);
      return messageDto({ ...rows[0], refunded: rows[0].refunded || refunded.length === 1 });
    });
  }
}

function singleResponse(result: ItemResult): { status: number; body: unknown } {
  if (result.ok) return { status: 202, body: messageDto(result.row) };
  return problemResponse(result.problem);
}

function batchResponse(
  results: ItemResult[],
  indexes: number[],
  early: RejectedItemDto[],
): { status: number; body: BatchResultDto } {
  const accepted: MessageDto[] = [];
  const rejected: RejectedItemDto[] = [...early];
  results.forEach((r, i) => {
    if (r.ok) accepted.push(messageDto(r.row));
    else rejected.push({ index: indexes[i], code: r.problem.code, detail: r.problem.detail ?? r.problem.title });
  });
  rejected.sort((a, b) => a.index - b.index);
  return { status: 202, body: { accepted, rejected } };
}
