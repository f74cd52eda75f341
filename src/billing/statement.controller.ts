import { Controller, Get, Headers, Param, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOkResponse, ApiOperation, ApiProduces, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CurrentTenant, Roles, TenantAuth, TenantPrincipal } from '../auth/auth.decorators';
import { TenantScope } from '../common/tenant-scope';
import { TenantsService } from '../tenants/tenants.service';
import { csvLine, wantsCsv } from './csv';
import { StatementDto, StatementQueryDto } from './statement.dto';
import { STATEMENT_COLUMNS, StatementService } from './statement.service';
import { ApiProblems } from '../common/api-problems.decorator';

const STATEMENT_DESCRIPTION =
  'The month is an Asia/Jakarta calendar month (it starts at 00:00 UTC+7 on the 1st, i.e. 17:00 UTC the day ' +
  'before). Movements are signed as in the ledger: openingBalance + topups + debits + refunds + adjustments + ' +
  'expired = closingBalance, and a closing balance is the next month’s opening balance. The current month is ' +
  'reported up to now; a future month is a 400. With `Accept: text/csv`: one header row and one data row.';

function send(res: FastifyReply, accept: string | undefined, s: StatementDto, tenantPublicId: string | null): void {
  res.header('Cache-Control', 'no-store');
  if (!wantsCsv(accept)) {
    res.status(200).send(s);
    return;
  }
  res
    .status(200)
    .header('Content-Type', 'text/csv; charset=utf-8')
    .header(
      'Content-Disposition',
      `attachment; filename="statement-${tenantPublicId ? `${tenantPublicId}-` : ''}${s.month}.csv"`,
    )
    .send(csvLine([...STATEMENT_COLUMNS]) + csvLine(STATEMENT_COLUMNS.map((c) => s[c])));
}

@ApiTags('tenant: balance')
@ApiSecurity('api-key')
@ApiBearerAuth('api-key-bearer')
@TenantAuth()
@ApiProblems(400, 401, 503)
@Controller('v1/statement')
export class TenantStatementController {
  constructor(private readonly statements: StatementService) {}

  @ApiOperation({ summary: 'Your statement for an Asia/Jakarta month', description: STATEMENT_DESCRIPTION })
  @ApiProduces('application/json', 'text/csv')
  @ApiOkResponse({ type: StatementDto })
  @Get()
  async statement(
    @CurrentTenant() tenant: TenantPrincipal,
    @Query() q: StatementQueryDto,
    @Headers('accept') accept: string | undefined,
    @Res() res: FastifyReply,
  ): Promise<void> {
    const scope = TenantScope.of(tenant.tenantId);
    send(res, accept, await this.statements.statement(scope.tenantId, q.month), null);
  }
}

@ApiTags('admin: billing')
@ApiBearerAuth('admin-jwt')
@ApiProblems(400, 401, [403, 'The role may not do this: `forbidden`'], 404, 503)
@Controller('v1/admin/tenants/:id/statement')
export class AdminStatementController {
  constructor(
    private readonly statements: StatementService,
    private readonly tenants: TenantsService,
  ) {}

  @ApiOperation({ summary: 'A tenant’s statement for an Asia/Jakarta month', description: STATEMENT_DESCRIPTION })
  @ApiProduces('application/json', 'text/csv')
  @ApiOkResponse({ type: StatementDto })
  @Roles('admin', 'billing')
  @Get()
  async statement(
    @Param('id') id: string,
    @Query() q: StatementQueryDto,
    @Headers('accept') accept: string | undefined,
    @Res() res: FastifyReply,
  ): Promise<void> {
    const tenant = await this.tenants.findEntity(id);
    send(res, accept, await this.statements.statement(TenantScope.of(tenant.id).tenantId, q.month), id);
  }
}
