import { Body, Controller, Get, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.decorator';
import { ListQueryDto } from '../common/list-query.dto';
import { Roles } from '../auth/auth.decorators';
import {
  CreateProviderAccountDto,
  ProviderAccountDto,
  ProviderAccountListDto,
  ProviderBalanceDto,
  UpdateProviderAccountDto,
} from './provider-accounts.dto';
import { ProviderBalanceService } from './provider-balance.service';
import { ProviderAccountsService } from './provider-accounts.service';

@ApiTags('admin: provider accounts')
@ApiProblems(401, [403, 'The role may not do this: `forbidden`'], 503)
@ApiBearerAuth('admin-jwt')
@Roles('admin')
@Controller('v1/admin/provider-accounts')
export class ProviderAccountsController {
  constructor(
    private readonly accounts: ProviderAccountsService,
    private readonly balances: ProviderBalanceService,
  ) {}

  /** Add a provider account (a "provider user id"). The response's `dlrCallbackUrl` is what to register with the provider. */
  @Post()
  @ApiProblems(400)
  create(@Body() body: CreateProviderAccountDto): Promise<ProviderAccountDto> {
    return this.accounts.create(body);
  }

  /** List provider accounts, newest first (passwords are never returned). */
  @Get()
  @ApiProblems(400)
  list(@Query() q: ListQueryDto): Promise<ProviderAccountListDto> {
    return this.accounts.list(q.limit ?? 50, q.cursor);
  }

  /** Get one provider account. */
  @Get(':id')
  @ApiProblems(404)
  get(@Param('id') id: string): Promise<ProviderAccountDto> {
    return this.accounts.get(id);
  }

  /** Change a provider account; a new `password` replaces the stored one. */
  @Patch(':id')
  @ApiProblems(400, 404)
  update(@Param('id') id: string, @Body() body: UpdateProviderAccountDto): Promise<ProviderAccountDto> {
    return this.accounts.update(id, body);
  }

  /** The account's balance live from the provider's `balance.php`, with the last known value. */
  @Roles('admin', 'billing')
  @Get(':id/balance')
  @ApiProblems(404, 502)
  balance(@Param('id') id: string): Promise<ProviderBalanceDto> {
    return this.balances.balance(id);
  }
}
