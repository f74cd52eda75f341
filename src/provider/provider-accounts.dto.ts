import { ApiProperty } from '@nestjs/swagger';
import { IsIn, IsInt, IsOptional, IsString, IsUrl, Max, MaxLength, Min, MinLength } from 'class-validator';
import { IsName, IsOmittable, MAX_AMOUNT } from '../common/validation';
import type { WalletAlertReason } from './wallet-rules';

const ALERT_REASONS: WalletAlertReason[] = ['empty', 'expired', 'low_balance', 'expiring'];

/**
 * No credentials, query or fragment: the provider client refuses such a base URL (every send would fail), and
 * credentials in it would be shown in every admin response (the password has its own, never-returned field).
 */
const URL_OPTS = {
  protocols: ['http', 'https'],
  require_protocol: true,
  require_tld: false,
  require_host: true,
  disallow_auth: true,
  allow_query_components: false,
  allow_fragments: false,
};
export const URL_MESSAGE = 'baseUrl must be an http(s) URL without credentials, a query or a fragment';

/**
 * The per-account limits, the same on create and on PATCH. Omitted or null on create, or null on PATCH:
 * the environment's value (omitted on PATCH keeps what is set).
 */
export class ProviderAccountLimitsDto {
  /**
   * Sends per second through this account (token bucket; `0` = no limit). Omitted or null: the
   * environment's `PROVIDER_SEND_RATE_PER_SECOND` (on PATCH, null puts it back).
   * @example 20
   */
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(1_000_000)
  sendRatePerSecond?: number | null;

  /**
   * Sends in flight at once through this account (1-10000). Omitted or null: the environment's
   * `PROVIDER_MAX_IN_FLIGHT` (on PATCH, null puts it back).
   * @example 10
   */
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(10_000)
  maxInFlight?: number | null;

  /**
   * Alert when the provider balance of this account falls below this (an integer in the provider's
   * unit; 0 = alert only when empty). Omitted or null: the environment's `PROVIDER_LOW_BALANCE_THRESHOLD` (0)
   * (on PATCH, null puts it back).
   * @example 50000
   */
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_AMOUNT)
  lowBalanceThreshold?: number | null;
}

export class CreateProviderAccountDto extends ProviderAccountLimitsDto {
  /**
   * A name for people.
   * @example "masking-user-07"
   */
  @IsName()
  name: string;

  /**
   * The provider's base URL including `/masking`. http(s) only, without credentials, a query or a fragment;
   * stored as parsed (`HTTPS://SMS.Example/masking/` → `https://sms.example/masking`).
   * @example "https://sms.example/masking"
   */
  @IsUrl(URL_OPTS, { message: URL_MESSAGE })
  @MaxLength(500)
  baseUrl: string;

  /**
   * The provider user id.
   * @example "gerbang07"
   */
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  username: string;

  /**
   * Stored encrypted (AES-256-GCM); never returned or logged.
   * @example "provider-password"
   */
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  password: string;

  /** `post` (default: `send_post.php`, credentials and text stay out of URLs) or `get` (`send.php`). */
  @IsOptional()
  @IsIn(['post', 'get'])
  sendMethod?: 'post' | 'get';
}

/** Fields left out are kept; null is refused except for the limits, where it means the environment's default. */
export class UpdateProviderAccountDto extends ProviderAccountLimitsDto {
  @IsOmittable()
  @IsName()
  name?: string;

  @IsOmittable()
  @IsUrl(URL_OPTS, { message: URL_MESSAGE })
  @MaxLength(500)
  baseUrl?: string;

  @IsOmittable()
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  username?: string;

  /** Rotates the stored password. */
  @IsOmittable()
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  password?: string;

  @IsOmittable()
  @IsIn(['post', 'get'])
  sendMethod?: 'post' | 'get';

  /** `disabled` holds all sending through this account. */
  @IsOmittable()
  @IsIn(['active', 'disabled'])
  status?: 'active' | 'disabled';
}

export class ProviderAccountDto {
  /** `pac_…` */
  id: string;
  name: string;
  baseUrl: string;
  username: string;
  sendMethod: 'post' | 'get';
  status: 'active' | 'disabled';
  /** Register this URL with the provider as this user's DLR callback. It contains a secret token. */
  dlrCallbackUrl: string;
  /** Last balance read from `balance.php` (a decimal string, as the provider reports it). */
  lastBalance: string | null;
  lastBalanceExpiresAt: Date | null;
  lastBalanceCheckedAt: Date | null;
  /** True when the last polled balance is below `lowBalanceThreshold`, empty, expired or expiring within 14 days. */
  alert: boolean;
  /** Why `alert` is set (empty when it is not). */
  @ApiProperty({ enum: ALERT_REASONS, isArray: true })
  alertReasons: WalletAlertReason[];
  /** Sends per second through this account (0 = no limit): its own setting or the environment's default. */
  sendRatePerSecond: number;
  /** Sends in flight at once through this account: its own setting or the environment's default. */
  maxInFlight: number;
  /** Low-balance alert threshold: its own setting or the environment's default. */
  lowBalanceThreshold: number;
  /** While set, dispatch holds this account's messages queued (the provider wallet is empty or lapsed, or a 50/51 came back). */
  heldUntil: Date | null;
  heldReason: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export class ProviderBalanceDto {
  /** What `balance.php` answered just now, or null when the call failed (see `error`). */
  live: { balance: string; expiresAt: Date } | null;
  /** Why the live call failed (no credentials in it). */
  error?: string;
  /** The last balance successfully read (a decimal string, as the provider reports it). */
  lastBalance: string | null;
  lastBalanceExpiresAt: Date | null;
  lastBalanceCheckedAt: Date | null;
  /** The alert as of the last known value (see the provider account's `alert`). */
  alert: boolean;
  @ApiProperty({ enum: ALERT_REASONS, isArray: true })
  alertReasons: WalletAlertReason[];
  /** Set while dispatch holds this account's messages. */
  heldUntil: Date | null;
  heldReason: string | null;
}

/** A page of provider accounts, newest first. */
export class ProviderAccountListDto {
  data: ProviderAccountDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}
