import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager, Repository } from 'typeorm';
import { Page, pageByIdDesc } from '../common/pagination';
import { fromPublicId, toPublicId, uuidv7 } from '../common/ids';
import { Problem, notFound } from '../common/problem';
import { ProviderAccountsService } from '../provider/provider-accounts.service';
import { Tenant, TenantStatus } from './tenant.entity';
import { CreateTenantDto, TenantDto, UpdateTenantDto } from './tenants.dto';

/** A tenant's sending settings: what the send path reads on every request (and, locked, when charging). */
export interface TenantSettings {
  status: TenantStatus;
  pricePerSegment: number;
  rateLimitPerSecond: number;
  providerAccountId: string;
}

@Injectable()
export class TenantsService {
  private readonly repo: Repository<Tenant>;

  constructor(
    dataSource: DataSource,
    private readonly providerAccounts: ProviderAccountsService,
  ) {
    this.repo = dataSource.getRepository(Tenant);
  }

  async create(dto: CreateTenantDto): Promise<TenantDto> {
    const providerAccountId = await this.providerAccountUuid(dto.providerAccountId);
    const tenant = this.repo.create({
      id: uuidv7(),
      name: dto.name.trim(),
      providerAccountId,
      status: 'active',
      pricePerSegment: dto.pricePerSegment,
      lowBalanceThreshold: dto.lowBalanceThreshold ?? 0,
      rateLimitPerSecond: dto.rateLimitPerSecond ?? 100,
    });
    await this.repo.insert(tenant);
    return this.toDto(await this.repo.findOneByOrFail({ id: tenant.id }));
  }

  list(limit: number, cursor?: string): Promise<Page<TenantDto>> {
    return pageByIdDesc(this.repo.createQueryBuilder('t'), 't', limit, cursor, (t) => this.toDto(t));
  }

  async get(publicId: string): Promise<TenantDto> {
    return this.toDto(await this.findEntity(publicId));
  }

  async update(publicId: string, dto: UpdateTenantDto): Promise<TenantDto> {
    const tenant = await this.findEntity(publicId);
    const patch: Partial<Tenant> = {};
    if (dto.name !== undefined) patch.name = dto.name.trim();
    if (dto.providerAccountId !== undefined)
      patch.providerAccountId = await this.providerAccountUuid(dto.providerAccountId);
    if (dto.status !== undefined) patch.status = dto.status;
    if (dto.pricePerSegment !== undefined) patch.pricePerSegment = dto.pricePerSegment;
    if (dto.lowBalanceThreshold !== undefined) patch.lowBalanceThreshold = dto.lowBalanceThreshold;
    if (dto.rateLimitPerSecond !== undefined) patch.rateLimitPerSecond = dto.rateLimitPerSecond;
    if (Object.keys(patch).length > 0) await this.repo.update({ id: tenant.id }, patch);
    return this.toDto(await this.repo.findOneByOrFail({ id: tenant.id }));
  }

  /** Resolves `ten_…` to the row, or 404. */
  async findEntity(publicId: string): Promise<Tenant> {
    const id = fromPublicId('tenant', publicId);
    const tenant = id ? await this.repo.findOneBy({ id }) : null;
    if (!tenant) throw notFound('Tenant');
    return tenant;
  }

  /** Ids (uuid) of every tenant on a provider account, suspended ones included: inbound SMS routing. */
  async idsOnProviderAccount(providerAccountId: string): Promise<string[]> {
    // TypeORM drops an undefined `where` value: that would list every tenant.
    if (!providerAccountId) throw new Error('idsOnProviderAccount requires a provider account id');
    const tenants = await this.repo.find({ select: { id: true }, where: { providerAccountId }, order: { id: 'ASC' } });
    return tenants.map((t) => t.id);
  }

  /**
   * The sending settings of a tenant, or null if there is none. With `m`, read inside the caller's
   * transaction: the ledger reads them right after locking the tenant row for a charge, so they cannot
   * change before it commits (an admin's PATCH waits for that row lock).
   */
  async settings(tenantId: string, m?: EntityManager): Promise<TenantSettings | null> {
    if (!tenantId) throw new Error('settings requires a tenant id');
    const rows: {
      status: TenantStatus;
      price_per_segment: string;
      rate_limit_per_second: number;
      provider_account_id: string;
    }[] = await (m ?? this.repo.manager).query(
      `SELECT status, price_per_segment, rate_limit_per_second, provider_account_id FROM tenants WHERE id = $1`,
      [tenantId],
    );
    if (rows.length === 0) return null;
    return {
      status: rows[0].status,
      pricePerSegment: Number(rows[0].price_per_segment),
      rateLimitPerSecond: rows[0].rate_limit_per_second,
      providerAccountId: rows[0].provider_account_id,
    };
  }

  async existsByName(name: string): Promise<boolean> {
    if (!name) throw new Error('existsByName requires a name');
    return this.repo.existsBy({ name });
  }

  private async providerAccountUuid(publicId: string): Promise<string> {
    const id = fromPublicId('providerAccount', publicId);
    const exists = id ? await this.providerAccounts.exists(id) : false;
    if (!exists || !id) {
      throw new Problem('validation_failed', 'providerAccountId does not exist', [
        { field: 'providerAccountId', message: 'providerAccountId does not exist' },
      ]);
    }
    return id;
  }

  toDto(t: Tenant): TenantDto {
    return {
      id: toPublicId('tenant', t.id),
      name: t.name,
      providerAccountId: toPublicId('providerAccount', t.providerAccountId),
      status: t.status,
      pricePerSegment: t.pricePerSegment,
      lowBalanceThreshold: t.lowBalanceThreshold,
      rateLimitPerSecond: t.rateLimitPerSecond,
      balance: t.balance,
      validUntil: t.validUntil,
      graceUntil: t.graceUntil,
      createdAt: t.createdAt,
      updatedAt: t.updatedAt,
    };
  }
}
