import { Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { JwtService } from '@nestjs/jwt';
import { DataSource, Repository } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { fromPublicId, toPublicId, uuidv7 } from '../common/ids';
import { Page, pageByIdDesc } from '../common/pagination';
import { Problem } from '../common/problem';
import { AdminRole, AdminUser } from './admin-user.entity';
import { AdminUserDto, TokenDto } from './auth.dto';
import { DUMMY_HASH, hashPassword, verifyPassword } from './password';

export interface JwtPayload {
  sub: string;
  email: string;
  role: AdminRole;
}

@Injectable()
export class AuthService implements OnApplicationBootstrap {
  private readonly logger = new Logger(AuthService.name);
  private readonly users: Repository<AdminUser>;

  constructor(
    dataSource: DataSource,
    private readonly jwt: JwtService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.users = dataSource.getRepository(AdminUser);
  }

  /** ADMIN_EMAIL / ADMIN_PASSWORD: on start, create that admin if no admin exists. */
  async onApplicationBootstrap(): Promise<void> {
    await this.bootstrapAdmin(this.config.adminEmail, this.config.adminPassword);
  }

  async login(email: string, password: string): Promise<TokenDto> {
    const user = await this.users.createQueryBuilder('u').where('lower(u.email) = lower(:email)', { email }).getOne();
    // Verify against a dummy hash for unknown users so response time does not reveal which emails exist.
    const ok = await verifyPassword(password, user?.passwordHash ?? DUMMY_HASH);
    if (!user || !ok) throw new Problem('unauthorized', 'Email or password is wrong');
    const payload: JwtPayload = { sub: toPublicId('user', user.id), email: user.email, role: user.role };
    return {
      accessToken: await this.jwt.signAsync(payload),
      expiresIn: this.config.jwtExpiresInSeconds,
      tokenType: 'Bearer',
    };
  }

  async createUser(email: string, password: string, role: AdminRole): Promise<AdminUserDto> {
    const user = this.users.create({
      id: uuidv7(),
      email: email.toLowerCase(),
      passwordHash: await hashPassword(password),
      role,
    });
    try {
      await this.users.insert(user);
    } catch (e) {
      if ((e as { code?: string }).code === '23505') throw new Problem('conflict', 'A user with this email exists');
      throw e;
    }
    const saved = await this.users.findOneByOrFail({ id: user.id });
    return this.toDto(saved);
  }

  /** Newest first (ids are UUIDv7), a page of `limit` after `cursor` (API.md "Lists"). */
  listUsers(limit: number, cursor?: string): Promise<Page<AdminUserDto>> {
    return pageByIdDesc(this.users.createQueryBuilder('u'), 'u', limit, cursor, (u) => this.toDto(u));
  }

  /** Resolves a token's subject to a live user (a deleted user's token stops working). */
  async findUser(publicId: string): Promise<AdminUser | null> {
    const id = fromPublicId('user', publicId);
    return id ? this.users.findOneBy({ id }) : null;
  }

  /** ADMIN_EMAIL/ADMIN_PASSWORD: create that admin on start when no admin exists yet. */
  async bootstrapAdmin(email: string | undefined, password: string | undefined): Promise<boolean> {
    if (!email || !password) return false;
    const admins = await this.users.countBy({ role: 'admin' });
    if (admins > 0) return false;
    await this.createUser(email, password, 'admin');
    this.logger.log({ email }, 'bootstrap admin created');
    return true;
  }

  private toDto(u: AdminUser): AdminUserDto {
    return { id: toPublicId('user', u.id), email: u.email, role: u.role, createdAt: u.createdAt };
  }
}
