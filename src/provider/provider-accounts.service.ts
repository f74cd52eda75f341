import { EntityManager } from 'typeorm';
import { Inject, Injectable } from '@nestjs/common';
import { Clock } from '../common/clock';
import { randomBytes } from 'node:crypto';
import { DataSource, Repository } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { fromPublicId, toPublicId, uuidv7 } from '../common/ids';
import { Page, pageByIdDesc } from '../common/pagination';
import { notFound, Problem } from '../common/problem';
import { prepared } from '../database/raw-rows';
import { SecretBox } from '../common/secret-box';
import { ProviderAccount } from './provider-account.entity';
import {
  CreateProviderAccountDto,
  ProviderAccountDto,
  UpdateProviderAccountDto,
  URL_MESSAGE,
} from './provider-accounts.dto';
import type { ProviderAccountConfig } from './client/provider-client';
import type { ProviderSendLimits } from './client/provider-client-registry';
import { assessWallet, type WalletAlertReason } from './wallet-rules';

/**
 * The base URL as stored: as parsed (the WHATWG form the provider client requests), without trailing slashes.
 * The validator accepts other spellings (`HTTPS://Host/masking/`), which the column's CHECK
 * (`base_url ~ '^https?://'`) refused with a 500.
 */
function storedBaseUrl(baseUrl: string): string {
  const refused = () =>
    new Problem('validation_failed', `baseUrl: ${URL_MESSAGE}`, [{ field: 'baseUrl', message: URL_MESSAGE }]);
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw refused();
  }
  // The DTO's validator refuses these already; WHATWG parsing is what the client does, so it decides too
  // (credentials would be shown in every admin response, and the client refuses such a URL on every send).
  if (url.username || url.password || url.search || url.hash) throw refused();
  return url.href.replace(/\/+$/, '');
}

/** An account's effective settings: its own where set, else the environment's defaults. */
export interface ProviderAccountSettings extends ProviderSendLimits {
  lowBalanceThreshold: number;
}

@Injectable()
export class ProviderAccountsService {
  private readonly repo: Repository<ProviderAccount>;
  /** Called with an account's id (uuid) once a change of its row has committed (see onChanged). */
  private readonly changeListeners: Array<(id: string) => void> = [];

  constructor(
    dataSource: DataSource,
    private readonly secrets: SecretBox,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clock: Clock,
  ) {
    this.repo = dataSource.getRepository(ProviderAccount);
  }

  async create(dto: CreateProviderAccountDto): Promise<ProviderAccountDto> {
    const account = this.repo.create({
      id: uuidv7(),
      name: dto.name.trim(),
      baseUrl: storedBaseUrl(dto.baseUrl),
      username: dto.username,
      passwordEnc: this.secrets.seal(dto.password),
      sendMethod: dto.sendMethod ?? 'post',
      // 192 random bits: the callback carries no signature, so the URL itself is the secret.
      dlrToken: randomBytes(24).toString('base64url'),
      status: 'active',
      sendRatePerSecond: dto.sendRatePerSecond ?? null,
      maxInFlight: dto.maxInFlight ?? null,
      lowBalanceThreshold: dto.lowBalanceThreshold ?? null,
    });
    await this.repo.insert(account);
    return this.toDto(await this.repo.findOneByOrFail({ id: account.id }));
  }

  /** Newest first (ids are UUIDv7), a page of `limit` after `cursor` (API.md "Lists"). */
  list(limit: number, cursor?: string): Promise<Page<ProviderAccountDto>> {
    return pageByIdDesc(this.repo.createQueryBuilder('a'), 'a', limit, cursor, (a) => this.toDto(a));
  }

  async get(publicId: string): Promise<ProviderAccountDto> {
    return this.toDto(await this.findEntity(publicId));
  }

  async update(publicId: string, dto: UpdateProviderAccountDto): Promise<ProviderAccountDto> {
    const account = await this.findEntity(publicId);
    const patch: Partial<ProviderAccount> = {};
    if (dto.name !== undefined) patch.name = dto.name.trim();
    if (dto.baseUrl !== undefined) patch.baseUrl = storedBaseUrl(dto.baseUrl);
    if (dto.username !== undefined) patch.username = dto.username;
    if (dto.password !== undefined) patch.passwordEnc = this.secrets.seal(dto.password);
    if (dto.sendMethod !== undefined) patch.sendMethod = dto.sendMethod;
    if (dto.status !== undefined) patch.status = dto.status;
    // null puts a setting back to the environment's default. The update bumps updated_at, which is the
    // version ProviderClients rebuilds an account's client (and its send gate) on: no restart needed.
    if (dto.sendRatePerSecond !== undefined) patch.sendRatePerSecond = dto.sendRatePerSecond;
    if (dto.maxInFlight !== undefined) patch.maxInFlight = dto.maxInFlight;
    if (dto.lowBalanceThreshold !== undefined) patch.lowBalanceThreshold = dto.lowBalanceThreshold;
    // New connection details: read the balance with them at the next tick rather than in up to a poll interval.
    if (dto.baseUrl !== undefined || dto.username !== undefined || dto.password !== undefined)
      patch.nextBalancePollAt = null;
    if (Object.keys(patch).length > 0) {
      await this.repo.update({ id: account.id }, patch);
      for (const listener of this.changeListeners) listener(account.id);
    }
    return this.toDto(await this.repo.findOneByOrFail({ id: account.id }));
  }

  /**
   * Registers a listener told (synchronously, after the commit) that an account's row changed in this process,
   * so a cache of it (ProviderClients) drops it at once: without it, a rotated password, a new URL or a disabled
   * account was still used here for up to the cache's TTL (a send rejected for wrong credentials and refunded).
   * Other processes see the change when their cache entry expires.
   */
  onChanged(listener: (id: string) => void): void {
    this.changeListeners.push(listener);
  }

  async findEntity(publicId: string): Promise<ProviderAccount> {
    const id = fromPublicId('providerAccount', publicId);
    const account = id ? await this.repo.findOneBy({ id }) : null;
    if (!account) throw notFound('Provider account');
    return account;
  }

  async findByDlrToken(token: string): Promise<ProviderAccount | null> {
    if (!/^[A-Za-z0-9_-]{16,64}$/.test(token)) return null;
    return this.repo.findOneBy({ dlrToken: token });
  }

  /** Ids (uuid) of the accounts in service (`status = 'active'`): the ones whose inbox is read. */
  async activeIds(): Promise<string[]> {
    const accounts = await this.repo.find({ select: { id: true }, where: { status: 'active' }, order: { id: 'ASC' } });
    return accounts.map((a) => a.id);
  }

  /** Whether an account with this id (uuid) exists: a tenant's foreign key, checked before insert for a 400. */
  async exists(id: string): Promise<boolean> {
    // TypeORM drops an undefined `where` value: that would match any account.
    if (!id) throw new Error('exists requires a provider account id');
    return this.repo.existsBy({ id });
  }

  async findByName(name: string): Promise<ProviderAccount | null> {
    if (!name) throw new Error('findByName requires a name');
    return this.repo.findOneBy({ name });
  }

  /**
   * Holds an account's queue until `until` (the provider reported 50/51: its wallet is empty or its
   * validity lapsed), inside the caller's transaction. The dispatcher skips held accounts; the
   * wallet watch releases the hold when a poll shows credit. A hold that already lasts longer (the
   * wallet watch's own) is kept as it is, reason included: a report must not shorten it, nor take it
   * over (the watch releases only its own holds).
   */
  async hold(m: EntityManager, id: string, until: Date, reason: string): Promise<void> {
    await m.query(
      `UPDATE provider_accounts
          SET held_reason = CASE WHEN held_until > $2 THEN held_reason ELSE $3 END,
              held_until = GREATEST(held_until, $2)
        WHERE id = $1`,
      [id, until, reason],
    );
  }

  /**
   * Ids (uuid) of the accounts dispatch may send through at `now`: in service and not held (a 50/51
   * report or the wallet watch sets `held_until`). The dispatcher claims only their messages.
   */
  async dispatchableIds(now: Date): Promise<string[]> {
    // Runs before every dispatcher claim: a fixed prepared text (the query builder cost ~0.25 ms of CPU per
    // call, measured; a small table that does not grow with traffic, so its generic plan is fine).
    const accounts = await prepared<{ id: string }>(
      this.repo.manager,
      `SELECT id FROM provider_accounts WHERE status = 'active' AND (held_until IS NULL OR held_until <= $1) ORDER BY id`,
      [now],
    );
    return accounts.map((a) => a.id);
  }

  /** The decrypted credentials, for the provider client only. */
  clientConfig(account: ProviderAccount): ProviderAccountConfig {
    return {
      accountId: account.id,
      baseUrl: account.baseUrl,
      username: account.username,
      password: this.secrets.open(account.passwordEnc),
      sendMethod: account.sendMethod,
    };
  }

  settingsOf(account: ProviderAccount): ProviderAccountSettings {
    const env = this.config.provider;
    return {
      sendRatePerSecond: account.sendRatePerSecond ?? env.sendRatePerSecond,
      maxInFlight: account.maxInFlight ?? env.maxInFlight,
      lowBalanceThreshold: account.lowBalanceThreshold ?? env.lowBalanceThreshold,
    };
  }

  /**
   * The alert as of now, from the last polled balance and the account's current threshold (so a PATCH
   * of the threshold shows at once). The poller raises logs and metrics from the same rules.
   */
  alertOf(account: ProviderAccount): WalletAlertReason[] {
    if (account.lastBalance === null || account.lastBalanceExpiresAt === null) return [];
    return assessWallet(
      { balance: account.lastBalance, expiresAt: account.lastBalanceExpiresAt },
      this.settingsOf(account).lowBalanceThreshold,
      this.clock.now(),
    ).reasons;
  }

  dlrCallbackUrl(account: ProviderAccount): string {
    return `${this.config.publicBaseUrl}/v1/dlr/${account.dlrToken}`;
  }

  toDto(a: ProviderAccount): ProviderAccountDto {
    const alertReasons = this.alertOf(a);
    const now = this.clock.now();
    const held = a.heldUntil !== null && a.heldUntil > now;
    return {
      id: toPublicId('providerAccount', a.id),
      name: a.name,
      baseUrl: a.baseUrl,
      username: a.username,
      sendMethod: a.sendMethod,
      status: a.status,
      dlrCallbackUrl: this.dlrCallbackUrl(a),
      lastBalance: a.lastBalance,
      lastBalanceExpiresAt: a.lastBalanceExpiresAt,
      lastBalanceCheckedAt: a.lastBalanceCheckedAt,
      alert: alertReasons.length > 0,
      alertReasons,
      ...this.settingsOf(a),
      heldUntil: held ? a.heldUntil : null,
      heldReason: held ? a.heldReason : null,
      createdAt: a.createdAt,
      updatedAt: a.updatedAt,
    };
  }
}
