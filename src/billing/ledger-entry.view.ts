/** Ledger entries as the balance routes show them: one entry, a movement (entry and balance after), a page. */

import { toPublicId } from '../common/ids';
import { ListQueryDto } from '../common/list-query.dto';
import { cursorField, decodeCursor, encodeCursor, Page } from '../common/pagination';
import { TenantScope } from '../common/tenant-scope';
import { LedgerEntryDto, LedgerMovementDto } from './billing.dto';
import { LedgerEntry } from './ledger-entry.entity';
import { LedgerService, Movement } from './ledger.service';

export function movementDto(r: Movement): LedgerMovementDto {
  return { entry: ledgerEntryDto(r.entry), balance: r.balance };
}

export function ledgerEntryDto(e: LedgerEntry): LedgerEntryDto {
  const dto: LedgerEntryDto = {
    id: toPublicId('ledgerEntry', e.id),
    kind: e.kind,
    amount: e.amount,
    balanceAfter: e.balanceAfter,
    createdAt: e.createdAt,
  };
  if (e.messageId) dto.messageId = toPublicId('message', e.messageId);
  if (e.reference !== null) dto.reference = e.reference;
  if (e.kind === 'topup' && e.validUntil && e.graceUntil) {
    dto.validUntil = e.validUntil;
    dto.graceUntil = e.graceUntil;
  }
  return dto;
}

export async function ledgerPage(
  ledger: LedgerService,
  scope: TenantScope,
  q: ListQueryDto,
): Promise<Page<LedgerEntryDto>> {
  const limit = q.limit ?? 50;
  const after = decodeCursor<{ seq: number }>(q.cursor, { seq: cursorField.seq });
  const rows = await ledger.listEntries(scope.tenantId, limit + 1, after?.seq ?? null);
  const page = rows.slice(0, limit);
  return {
    data: page.map(ledgerEntryDto),
    nextCursor: rows.length > limit ? encodeCursor({ seq: page[page.length - 1].seq }) : null,
  };
}
