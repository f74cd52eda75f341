import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/decorators';
import { ListQueryDto, Page } from '../common/pagination';
import { ApiKeysService } from './api-keys.service';
import {
  ApiKeyDto,
  CreateApiKeyDto,
  CreateTenantDto,
  CreatedApiKeyDto,
  TenantDto,
  UpdateTenantDto,
} from './tenants.dto';
import { TenantsService } from './tenants.service';

@ApiTags('admin: tenants')
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
  create(@Body() body: CreateTenantDto): Promise<TenantDto> {
    return this.tenants.create(body);
  }

  /** List tenants, newest first. */
  @Roles('admin', 'billing')
  @Get()
  list(@Query() q: ListQueryDto): Promise<Page<TenantDto>> {
    return this.tenants.list(q.limit ?? 50, q.cursor);
  }

  /** Get one tenant, with its balance and validity. */
  @Roles('admin', 'billing')
  @Get(':id')
  get(@Param('id') id: string): Promise<TenantDto> {
    return this.tenants.get(id);
  }

  /** Change settings; `status: "suspended"` stops new sends at once. */
  @Roles('admin')
  @Patch(':id')
  update(@Param('id') id: string, @Body() body: UpdateTenantDto): Promise<TenantDto> {
    return this.tenants.update(id, body);
  }

  /** Create an API key. The key is in this response only. */
  @Roles('admin')
  @Post(':id/api-keys')
  async createKey(@Param('id') id: string, @Body() body: CreateApiKeyDto): Promise<CreatedApiKeyDto> {
    const tenant = await this.tenants.findEntity(id);
    return this.apiKeys.create(tenant.id, body.name?.trim() ?? null);
  }

  /** List a tenant's API keys (prefixes only; keys are never shown again). */
  @Roles('admin')
  @Get(':id/api-keys')
  async listKeys(@Param('id') id: string): Promise<{ data: ApiKeyDto[] }> {
    const tenant = await this.tenants.findEntity(id);
    return { data: await this.apiKeys.list(tenant.id) };
  }

  /** Revoke a key. Idempotent. */
  @Roles('admin')
  @Delete(':id/api-keys/:keyId')
  @HttpCode(204)
  async revokeKey(@Param('id') id: string, @Param('keyId') keyId: string): Promise<void> {
    const tenant = await this.tenants.findEntity(id);
    await this.apiKeys.revoke(tenant.id, keyId);
  }
}
