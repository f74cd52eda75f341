import { Controller, Get, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiSecurity, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.decorator';
import { CurrentTenant, TenantAuth, TenantPrincipal } from '../auth/auth.decorators';
import { ListQueryDto } from '../common/list-query.dto';
import { TenantScope } from '../common/tenant-scope';
import { BalanceDto, LedgerEntryPageDto } from './billing.dto';
import { ledgerPage } from './ledger-entry.view';
import { LedgerService } from './ledger.service';

@ApiTags('tenant: balance')
@ApiProblems(401, 503)
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
  @ApiProblems(400)
  ledgerEntries(@CurrentTenant() tenant: TenantPrincipal, @Query() q: ListQueryDto): Promise<LedgerEntryPageDto> {
    return ledgerPage(this.ledger, TenantScope.of(tenant.tenantId), q);
  }
}
