import { Body, Controller, Get, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/decorators';
import {
  CreateProviderAccountDto,
  ProviderAccountDto,
  ProviderBalanceDto,
  ProviderReportDto,
  ProviderReportQueryDto,
  UpdateProviderAccountDto,
} from './provider-accounts.dto';
import { ProviderReportsService } from './provider-reports.service';
import { ProviderAccountsService } from './provider-accounts.service';

@ApiTags('admin: provider accounts')
@ApiBearerAuth('admin-jwt')
@Roles('admin')
@Controller('v1/admin/provider-accounts')
export class ProviderAccountsController {
  constructor(
    private readonly accounts: ProviderAccountsService,
    private readonly reports: ProviderReportsService,
  ) {}

  /** Add a provider account (a "provider user id"). The response's `dlrCallbackUrl` is what to register with the provider. */
  @Post()
  create(@Body() body: CreateProviderAccountDto): Promise<ProviderAccountDto> {
    return this.accounts.create(body);
  }

  /** List provider accounts (passwords are never returned). */
  @Get()
  async list(): Promise<{ data: ProviderAccountDto[] }> {
    return { data: await this.accounts.list() };
  }

  /** Get one provider account. */
  @Get(':id')
  get(@Param('id') id: string): Promise<ProviderAccountDto> {
    return this.accounts.get(id);
  }

  /** Change a provider account; a new `password` replaces the stored one. */
  @Patch(':id')
  update(@Param('id') id: string, @Body() body: UpdateProviderAccountDto): Promise<ProviderAccountDto> {
    return this.accounts.update(id, body);
  }

  /** The account's balance live from the provider's `balance.php`, with the last known value. */
  @Roles('admin', 'billing')
  @Get(':id/balance')
  balance(@Param('id') id: string): Promise<ProviderBalanceDto> {
    return this.reports.balance(id);
  }

  /** The provider's own report (`reports_post.php`) for a date range, reconciled against Gerbang's messages. */
  @Roles('admin', 'billing')
  @Get(':id/report')
  report(@Param('id') id: string, @Query() q: ProviderReportQueryDto): Promise<ProviderReportDto> {
    return this.reports.report(id, q.start, q.end);
  }
}
