import { PartialType } from '@nestjs/swagger';
import { IsIn, IsInt, IsOptional, IsString, Matches, Max, MaxLength, Min } from 'class-validator';
import { IsAmount, IsName, IsOmittable } from '../common/validation';

export class CreateTenantDto {
  /** @example "Toko Maju Jaya" */
  @IsName()
  name: string;

  /**
   * `pac_…` of the provider account this tenant's messages go through.
   * @example "pac_0f6b3c1e9a2d4b7c8e5f1a2b3c4d5e6f"
   */
  @IsString()
  @MaxLength(64)
  @Matches(/^pac_/, { message: 'providerAccountId must be a provider account id (pac_…)' })
  providerAccountId: string;

  /**
   * Price of one SMS segment, in the smallest currency unit (integer).
   * @example 350
   */
  @IsAmount({ allowZero: true })
  pricePerSegment: number;

  /** A `balance.low` webhook fires when the balance falls below this. Default 0 (off). Not null. */
  @IsOmittable()
  @IsAmount({ allowZero: true })
  lowBalanceThreshold?: number;

  /** Sends per second allowed for this tenant's API keys together. Default 100. Not null. */
  @IsOmittable()
  @IsInt()
  @Min(1)
  @Max(100000)
  rateLimitPerSecond?: number;
}

/**
 * Every field of CreateTenantDto, optional, plus `status`. Left out is kept; null is refused (none has a null
 * value): `skipNullProperties: false` validates null instead of skipping it as IsOptional does (it was a 500).
 */
export class UpdateTenantDto extends PartialType(CreateTenantDto, { skipNullProperties: false }) {
  /** `suspended` refuses new sends (403 `tenant_suspended`); reads keep working. */
  @IsOmittable()
  @IsIn(['active', 'suspended'])
  status?: 'active' | 'suspended';
}

export class TenantDto {
  /** `ten_…` */
  id: string;
  name: string;
  providerAccountId: string;
  status: 'active' | 'suspended';
  pricePerSegment: number;
  lowBalanceThreshold: number;
  rateLimitPerSecond: number;
  balance: number;
  validUntil: Date | null;
  graceUntil: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

export class CreateApiKeyDto {
  /**
   * A label for people.
   * @example "production server"
   */
  @IsOptional()
  @IsName(100)
  name?: string;
}

export class ApiKeyDto {
  /** `key_…` */
  id: string;
  /** The first 12 characters of the key, to tell keys apart. */
  prefix: string;
  name: string | null;
  createdAt: Date;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
}

export class CreatedApiKeyDto extends ApiKeyDto {
  /** The key itself. Shown only in this response: store it now. */
  key: string;
}

/** A page of tenants, newest first. */
export class TenantPageDto {
  data: TenantDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/** A page of a tenant's API keys, newest first. */
export class ApiKeyListDto {
  data: ApiKeyDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}
