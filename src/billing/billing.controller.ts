import { Body, Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { AdminPrincipal, CurrentAdmin, CurrentTenant, Roles, TenantAuth, TenantPrincipal } from '../common/decorators';
import { toPublicId } from '../common/ids';
import { cursorField, decodeCursor, encodeCursor, ListQueryDto, Page } from '../common/pagination';
import { TenantScope } from '../common/tenant-scope';
import { TenantsService } from '../tenants/tenants.service';
import { AdjustmentDto, BalanceDto, LedgerEntryDto, LedgerMovementDto, TopUpDto } from './billing.dto';
import { LedgerEntry } from './ledger-entry.entity';
import { LedgerService } from './ledger.service';

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

async function ledgerPage(ledger: LedgerService, scope: TenantScope, q: ListQueryDto): Promise<Page<LedgerEntryDto>> {
  const limit = q.limit ?? 50;
  const after = decodeCursor<{ seq: number }>(q.cursor, { seq: cursorField.seq });
  const rows = await ledger.listEntries(scope.tenantId, limit + 1, after?.seq ?? null);
  const page = rows.slice(0, limit);
  return {
    data: page.map(ledgerEntryDto),
    nextCursor: rows.length > limit ? encodeCursor({ seq: page[page.length - 1].seq }) : null,
  };
}

@ApiTags('tenant: balance')
@ApiSecurity('api-key')
@ApiBearerAuth('api-key-bearer')
@TenantAuth()
@Controller('v1')
export class TenantBillingController {
  constructor(private readonly ledger: LedgerService) {}

  /** Your balance and its validity (3 months from the last top-up, then 1 month of grace). */
  @Get('balance')
  balance(@CurrentTenant() tenant: TenantPrincipal): Promise<BalanceDto> {
    return this.ledger.balance(TenantScope.of(tenant.tenantId).tenantId);
  }

  /** Every movement of your balance, newest first. */
  @Get('ledger')
  ledgerEntries(@CurrentTenant() tenant: TenantPrincipal, @Query() q: ListQueryDto): Promise<Page<LedgerEntryDto>> {
    return ledgerPage(this.ledger, TenantScope.of(tenant.tenantId), q);
  }
}

@ApiTags('admin: billing')
@ApiBearerAuth('admin-jwt')
@Controller('v1/admin/tenants/:id')
export class AdminBillingController {
  constructor(
    private readonly ledger: LedgerService,
    private readonly tenants: TenantsService,
  ) {}

  /** Credit a top-up. Validity becomes max(validUntil, now + 3 months); grace is one month more. */
  @Roles('admin')
  @Post('topups')
  async topUp(
    @Param('id') id: string,
    @Body() body: TopUpDto,
    @CurrentAdmin() admin: AdminPrincipal,
  ): Promise<LedgerMovementDto> {
    const tenant = await this.tenants.findEntity(id);
    const r = await this.ledger.topUp(tenant.id, body.amount, body.reference ?? null, admin.userId);
    return { entry: ledgerEntryDto(r.entry), balance: r.balance };
  }

  /** A signed correction. Never drives the balance below zero (402 `insufficient_balance`). */
  @Roles('admin')
  @Post('adjustments')
  async adjust(
    @Param('id') id: string,
    @Body() body: AdjustmentDto,
    @CurrentAdmin() admin: AdminPrincipal,
  ): Promise<LedgerMovementDto> {
    const tenant = await this.tenants.findEntity(id);
    const r = await this.ledger.adjust(tenant.id, body.amount, body.reason.trim(), admin.userId);
    return { entry: ledgerEntryDto(r.entry), balance: r.balance };
  }

  /** A tenant's ledger, newest first. */
  @Roles('admin', 'billing')
  @Get('ledger')
  async ledgerEntries(@Param('id') id: string, @Query() q: ListQueryDto): Promise<Page<LedgerEntryDto>> {
    const tenant = await this.tenants.findEntity(id);
    return ledgerPage(this.ledger, TenantScope.of(tenant.id), q);
  }

  /** A tenant's balance and its validity. */
  @Roles('admin', 'billing')
  @Get('balance')
  async balance(@Param('id') id: string): Promise<BalanceDto> {
    const tenant = await this.tenants.findEntity(id);
    return this.ledger.balance(tenant.id);
  }
}
