import { Body, Controller, Get, Headers, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiCreatedResponse, ApiHeader, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiProblems } from '../common/api-problems.decorator';
import { AdminPrincipal, CurrentAdmin, Roles } from '../auth/auth.decorators';
import { ListQueryDto } from '../common/list-query.dto';
import { TenantScope } from '../common/tenant-scope';
import { IdempotencyService, sendIdempotent } from '../idempotency/idempotency.service';
import { TenantsService } from '../tenants/tenants.service';
import type { EntityManager } from 'typeorm';
import { AdjustmentDto, BalanceDto, LedgerEntryPageDto, LedgerMovementDto, TopUpDto } from './billing.dto';
import { ledgerPage, movementDto } from './ledger-entry.view';
import { LedgerService, Movement } from './ledger.service';

const ADMIN_IDEMPOTENCY_HEADER = {
  name: 'Idempotency-Key',
  required: false,
  description:
    'Up to 255 printable ASCII characters, kept at least 24 h. Scoped to the tenant and this route ' +
    "(the same key on another tenant, on the other money route or on the tenant's own sends is a " +
    'different request). The same key with the same body (compared as JSON, key order ignored) ' +
    'returns the stored response with `Idempotent-Replayed: true` and credits once, a refusal ' +
    '(e.g. 402) included; with a different body 422 `idempotency_conflict`; while the first request ' +
    'runs, 409 `idempotency_in_progress` (retry later).',
};

@ApiTags('admin: billing')
@ApiProblems(401, [403, 'The role may not do this: `forbidden`'], 404, 503)
@ApiBearerAuth('admin-jwt')
@Controller('v1/admin/tenants/:id')
export class AdminBillingController {
  constructor(
    private readonly ledger: LedgerService,
    private readonly tenants: TenantsService,
    private readonly idempotency: IdempotencyService,
  ) {}

  /**
   * Credit a top-up. Validity becomes max(validUntil, now + 3 months); grace is one month more.
   * With `Idempotency-Key`, a billing system retrying after a timeout never credits twice.
   */
  @Roles('admin')
  @Post('topups')
  @ApiHeader(ADMIN_IDEMPOTENCY_HEADER)
  @ApiCreatedResponse({ type: LedgerMovementDto })
  @ApiOperation({
    description:
      'Validity months are calendar months in Asia/Jakarta: a top-up at 2026-11-30 10:00 Jakarta time is valid until 2027-02-28 10:00 Jakarta time (the end of a shorter month is its last day).',
  })
  @ApiBody({
    type: TopUpDto,
    examples: {
      topUp: { summary: 'A paid invoice', value: { amount: 500000, reference: 'INV-2026-0042' } },
    },
  })
  @ApiProblems(400, 409, 422)
  async topUp(
    @Param('id') id: string,
    @Body() body: TopUpDto,
    @CurrentAdmin() admin: AdminPrincipal,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ): Promise<LedgerMovementDto> {
    const tenant = await this.tenants.findEntity(id);
    return this.once(tenant.id, 'topups', idempotencyKey, req, res, (within) =>
      this.ledger.topUp(tenant.id, body.amount, body.reference ?? null, admin.userId, within),
    );
  }

  /**
   * A signed correction. Never drives the balance below zero (402 `insufficient_balance`).
   * `Idempotency-Key` as for top-ups.
   */
  @Roles('admin')
  @Post('adjustments')
  @ApiHeader(ADMIN_IDEMPOTENCY_HEADER)
  @ApiCreatedResponse({ type: LedgerMovementDto })
  @ApiProblems(400, [402, 'A negative adjustment larger than the balance: `insufficient_balance`'], 409, 422)
  async adjust(
    @Param('id') id: string,
    @Body() body: AdjustmentDto,
    @CurrentAdmin() admin: AdminPrincipal,
    @Headers('idempotency-key') idempotencyKey: string | undefined,
    @Req() req: FastifyRequest,
    @Res({ passthrough: true }) res: FastifyReply,
  ): Promise<LedgerMovementDto> {
    const tenant = await this.tenants.findEntity(id);
    return this.once(tenant.id, 'adjustments', idempotencyKey, req, res, (within) =>
      this.ledger.adjust(tenant.id, body.amount, body.reason.trim(), admin.userId, within),
    );
  }

  /** One money movement, at most once per Idempotency-Key (the key completes in the movement's transaction). */
  private async once(
    tenantId: string,
    route: 'topups' | 'adjustments',
    idempotencyKey: string | undefined,
    req: FastifyRequest,
    res: FastifyReply,
    move: (within?: (m: EntityManager, r: Movement) => Promise<void>) => Promise<Movement>,
  ): Promise<LedgerMovementDto> {
    const key = idempotencyKey === undefined ? undefined : IdempotencyService.scopedKey(route, idempotencyKey);
    const hash =
      key === undefined ? '' : IdempotencyService.hashes('POST', `/v1/admin/tenants/{id}/${route}`, req.body);
    const r = await this.idempotency.run(
      tenantId,
      key,
      hash,
      async (claim) => {
        const moved = await move(
          claim && ((m, result) => this.idempotency.complete(m, claim, 201, movementDto(result))),
        );
        return { status: 201, body: movementDto(moved) };
      },
      { storeRefusals: true },
    );
    return sendIdempotent(res, r) as LedgerMovementDto;
  }

  /** A tenant's ledger, newest first. */
  @Roles('admin', 'billing')
  @Get('ledger')
  @ApiProblems(400)
  async ledgerEntries(@Param('id') id: string, @Query() q: ListQueryDto): Promise<LedgerEntryPageDto> {
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
