import { Controller, Get, Headers, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiProduces, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CurrentTenant, Roles, TenantAuth, TenantPrincipal } from '../auth/auth.decorators';
import { fromPublicId } from '../common/ids';
import { Problem } from '../common/problem';
import { TenantScope } from '../common/tenant-scope';
import { TenantsService } from '../tenants/tenants.service';
import { wantsCsv } from './csv';
import { AdminUsageListDto, AdminUsageQueryDto, UsageListDto, UsageQueryDto } from './usage.dto';
import { USAGE_COLUMNS, UsageService } from './usage.service';
import { ApiProblems, ProblemStatus } from '../common/api-problems.decorator';

const USAGE_DESCRIPTION =
  'Days and months are Asia/Jakarta calendar days and months (UTC+7): a day runs from 17:00 UTC of the day ' +
  'before to 17:00 UTC; `to` is inclusive. One record per period with activity (none for empty periods). ' +
  'Message counts are of the messages accepted in the period, by their status now (`pending`: not final yet); ' +
  '`amount` is charged minus refunded as booked in the ledger in the period, and `refunded` the refunds booked ' +
  'in it. With `Accept: text/csv`: the same records as CSV (RFC 4180, header row), streamed.';

const EXPORTS_BUSY: [ProblemStatus, string] = [
  429,
  'Every usage export slot of this gateway process is taken (`USAGE_EXPORT_CONCURRENCY`): `rate_limited`, with `Retry-After`',
];

@ApiTags('tenant: balance')
@ApiSecurity('api-key')
@ApiBearerAuth('api-key-bearer')
@TenantAuth()
@ApiProblems(400, 401, EXPORTS_BUSY, 503)
@Controller('v1/usage')
export class TenantUsageController {
  constructor(private readonly usage: UsageService) {}

  @ApiOperation({ summary: 'Your usage per Asia/Jakarta day or month', description: USAGE_DESCRIPTION })
  @ApiProduces('application/json', 'text/csv')
  @ApiOkResponse({ type: UsageListDto })
  @Get()
  async list(
    @CurrentTenant() tenant: TenantPrincipal,
    @Query() q: UsageQueryDto,
    @Headers('accept') accept: string | undefined,
    @Res() res: FastifyReply,
  ): Promise<void> {
    const scope = TenantScope.of(tenant.tenantId);
    const range = this.usage.resolve(q);
    await this.usage.export(res, range, scope.tenantId, { csv: wantsCsv(accept), columns: USAGE_COLUMNS });
  }
}

@ApiTags('admin: billing')
@ApiBearerAuth('admin-jwt')
@ApiProblems(400, 401, [403, 'The role may not do this: `forbidden`'], 404, EXPORTS_BUSY, 503)
@Controller('v1/admin/usage')
export class AdminUsageController {
  constructor(
    private readonly usage: UsageService,
    private readonly tenants: TenantsService,
  ) {}

  @ApiOperation({
    summary: 'Usage per tenant and Asia/Jakarta day or month',
    description: `${USAGE_DESCRIPTION} Without \`tenantId\`: every tenant, ordered by tenant then period.`,
  })
  @ApiProduces('application/json', 'text/csv')
  @ApiOkResponse({ type: AdminUsageListDto })
  @Roles('admin', 'billing')
  @Get()
  async list(
    @Query() q: AdminUsageQueryDto,
    @Headers('accept') accept: string | undefined,
    @Res() res: FastifyReply,
  ): Promise<void> {
    let tenantId: string | null = null;
    if (q.tenantId !== undefined) {
      if (!fromPublicId('tenant', q.tenantId)) {
        throw new Problem('validation_failed', 'tenantId is not a tenant id', [
          { field: 'tenantId', message: 'must be a ten_… id' },
        ]);
      }
      tenantId = TenantScope.of((await this.tenants.findEntity(q.tenantId)).id).tenantId;
    }
    const range = this.usage.resolve(q);
    await this.usage.export(res, range, tenantId, { csv: wantsCsv(accept), columns: ['tenantId', ...USAGE_COLUMNS] });
  }
}
