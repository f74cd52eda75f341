import { IsEmail, IsIn, IsString, MaxLength, MinLength } from 'class-validator';
import type { AdminRole } from './admin-user.entity';

export class LoginDto {
  /**
   * The admin's email address.
   * @example "admin@example.com"
   */
  @IsEmail()
  @MaxLength(320)
  email: string;

  @IsString()
  @MinLength(1)
  @MaxLength(200)
  password: string;
}

export class TokenDto {
  /** A JWT to send as `Authorization: Bearer <token>` on admin routes. */
  accessToken: string;
  /** Lifetime of the token in seconds. */
  expiresIn: number;
  tokenType: 'Bearer';
}

export class CreateAdminUserDto {
  @IsEmail()
  @MaxLength(320)
  email: string;

  /** At least 12 characters. */
  @IsString()
  @MinLength(12)
  @MaxLength(200)
  password: string;

  /** `admin` may do everything; `billing` may read usage, balances and ledgers. */
  @IsIn(['admin', 'billing'])
  role: AdminRole;
}

export class AdminUserDto {
  /** `usr_…` */
  id: string;
  email: string;
  role: AdminRole;
  createdAt: Date;
}

/** A page of admin and billing users, newest first. */
export class AdminUserListDto {
  data: AdminUserDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}
