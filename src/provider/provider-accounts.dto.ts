import { IsIn, IsOptional, IsString, IsUrl, MaxLength, MinLength } from 'class-validator';
import { IsName } from '../common/validation';

const URL_OPTS = { protocols: ['http', 'https'], require_protocol: true, require_tld: false, require_host: true };

export class CreateProviderAccountDto {
  /** A name for people, e.g. "masking-user-07". */
  @IsName()
  name: string;

  /** The provider's base URL including `/masking`, e.g. `https://sms.example/masking`. http(s) only. */
  @IsUrl(URL_OPTS, { message: 'baseUrl must be an http(s) URL' })
  @MaxLength(500)
  baseUrl: string;

  /** The provider user id. */
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  username: string;

  /** Stored encrypted (AES-256-GCM); never returned or logged. */
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  password: string;

  /** `post` (default: `send_post.php`, credentials and text stay out of URLs) or `get` (`send.php`). */
  @IsOptional()
  @IsIn(['post', 'get'])
  sendMethod?: 'post' | 'get';
}

export class UpdateProviderAccountDto {
  @IsOptional()
  @IsName()
  name?: string;

  @IsOptional()
  @IsUrl(URL_OPTS, { message: 'baseUrl must be an http(s) URL' })
  @MaxLength(500)
  baseUrl?: string;

  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  username?: string;

  /** Rotates the stored password. */
  @IsOptional()
  @IsString()
  @MinLength(1)
  @MaxLength(200)
  password?: string;

  @IsOptional()
  @IsIn(['post', 'get'])
  sendMethod?: 'post' | 'get';

  /** `disabled` holds all sending through this account. */
  @IsOptional()
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
  createdAt: Date;
  updatedAt: Date;
}
