import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { ApiProblems } from '../common/api-problems.decorator';
import { Roles } from '../auth/auth.decorators';
import { ListQueryDto } from '../common/list-query.dto';
import { ApiKeysService } from './api-keys.service';
import {
  ApiKeyListDto,
  CreateApiKeyDto,
  CreateTenantDto,
  CreatedApiKeyDto,
  TenantDto,
  TenantPageDto,
  UpdateTenantDto,
} from './tenants.dto';
import { TenantsService } from './tenants.service';

@ApiTags('admin: tenants')
@ApiProblems(401, [403, 'The role may not do this: `forbidden`'], 503)
@ApiBearerAuth('admin-jwt')
@Controller('v1/admin/tenants')
export class TenantsController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly apiKeys: ApiKeysService,
  ) {}

  /** Create a tenant on a provider account, with its price per segment. */
  @Roles('admin')
  @Post()
  @ApiProblems([400, 'Invalid request, or an unknown `providerAccountId`: `validation_failed`'])
  create(@Body() body: CreateTenantDto): Promise<TenantDto> {
    return this.tenants.create(body);
  }

  /** List tenants, newest first. */
  @Roles('admin', 'billing')
  @Get()
  @ApiProblems(400)
  list(@Query() q: ListQueryDto): Promise<TenantPageDto> {
    return this.tenants.list(q.limit ?? 50, q.cursor);
  }

  /** Get one tenant, with its balance and validity. */
  @Roles('admin', 'billing')
  @Get(':id')
  @ApiProblems(404)
  get(@Param('id') id: string): Promise<TenantDto> {
    return this.tenants.get(id);
  }

  /** Change settings; `status: "suspended"` stops new sends at once. */
  @Roles('admin')
  @Patch(':id')
  @ApiProblems(400, 404)
  update(@Param('id') id: string, @Body() body: UpdateTenantDto): Promise<TenantDto> {
    return this.tenants.update(id, body);
  }

  /** Create an API key. The key is in this response only. */
  @Roles('admin')
  @Post(':id/api-keys')
  @ApiProblems(400, 404)
  async createKey(@Param('id') id: string, @Body() body: CreateApiKeyDto): Promise<CreatedApiKeyDto> {
    const tenant = await this.tenants.findEntity(id);
    return this.apiKeys.create(tenant.id, body.name?.trim() ?? null);
  }

  /** List a tenant's API keys, newest first (prefixes only; keys are never shown again). */
  @Roles('admin')
  @Get(':id/api-keys')
  @ApiProblems(400, 404)
  async listKeys(@Param('id') id: string, @Query() q: ListQueryDto): Promise<ApiKeyListDto> {
    const tenant = await this.tenants.findEntity(id);
    return this.apiKeys.list(tenant.id, q.limit ?? 50, q.cursor);
  }

  /** Revoke a key. Idempotent. */
  @Roles('admin')
  @Delete(':id/api-keys/:keyId')
  @HttpCode(204)
  @ApiProblems(404)
  async revokeKey(@Param('id') id: string, @Param('keyId') keyId: string): Promise<void> {
    const tenant = await this.tenants.findEntity(id);
    await this.apiKeys.revoke(tenant.id, keyId);
  }
}
