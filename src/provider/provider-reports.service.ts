import { Injectable } from '@nestjs/common';
import { DateTime } from 'luxon';
import { toPublicId } from '../common/ids';
import { Problem } from '../common/problem';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderBalanceDto, ProviderReportDto } from './provider-accounts.dto';
import { ProviderClients } from './provider-clients.service';
import { ProviderWalletService } from './provider-wallet.service';
import { ProviderError } from './client';
import { MessageReadsService } from '../messaging/message-reads.service';

const ZONE = 'Asia/Jakarta';

/** Live reads from the provider for admins: balance.php and reports_post.php reconciled against our records. */
@Injectable()
export class ProviderReportsService {
  constructor(
    private readonly messages: MessageReadsService,
    private readonly accounts: ProviderAccountsService,
    private readonly clients: ProviderClients,
    private readonly wallet: ProviderWalletService,
  ) {}

  /** A live read of balance.php, applied like a scheduled poll (history row, alert, hold/release). */
  async balance(publicId: string): Promise<ProviderBalanceDto> {
    const account = await this.accounts.findEntity(publicId);
    const check = await this.wallet.check(account.id, 'live');
    const fresh = await this.accounts.findEntity(publicId);
    const view = this.accounts.toDto(fresh);
    return {
      live: check.kind === 'balance' ? { balance: check.balance, expiresAt: check.expiresAt } : null,
      ...(check.kind === 'error' ? { error: check.reason } : {}),
      lastBalance: fresh.lastBalance,
      lastBalanceExpiresAt: fresh.lastBalanceExpiresAt,
      lastBalanceCheckedAt: fresh.lastBalanceCheckedAt,
      alert: view.alert,
      alertReasons: view.alertReasons,
      heldUntil: view.heldUntil,
      heldReason: view.heldReason,
    };
  }

  async report(publicId: string, start: string, end: string): Promise<ProviderReportDto> {
    const from = DateTime.fromISO(start, { zone: ZONE });
    const to = DateTime.fromISO(end, { zone: ZONE });
    if (!from.isValid || !to.isValid || to < from || to.diff(from, 'days').days > 31) {
      throw new Problem(
        'validation_failed',
        'start and end must be valid dates, end not before start, at most 31 days apart',
      );
    }
    const account = await this.accounts.findEntity(publicId);
    const found = await this.clients.forAccount(account.id);
    const r = await found!.client.downloadReport(from.toJSDate(), to.toJSDate()).catch(providerUnavailable);
    if (r.kind !== 'report') throw new Problem('conflict', `The provider did not return a report: ${r.reason}`);
    // The file's format is undocumented: the id column is the first whose name mentions an id/session.
    const idColumn = r.header.find((h) => /id|session|response/i.test(h)) ?? r.header[0];
    const providerIds = r.rows.map((row) => (row[idColumn] ?? '').trim()).filter((v) => /^\d+$/.test(v));
    const ours = await this.messages.submittedThrough(
      account.id,
      from.startOf('day').toJSDate(),
      to.plus({ days: 1 }).startOf('day').toJSDate(),
    );
    const knownSet = await this.messages.knownProviderIds(account.id, providerIds);
    const providerSet = new Set(providerIds);
    return {
      start,
      end,
      header: r.header,
      providerRows: r.rows.length,
      matched: knownSet.size,
      unknownToGateway: providerIds.filter((id) => !knownSet.has(id)).slice(0, 100),
      missingAtProvider: ours
        .filter((m) => m.providerMessageId && !providerSet.has(m.providerMessageId))
        .slice(0, 100)
        .map((m) => toPublicId('message', m.id)),
      rows: r.rows.slice(0, 500),
    };
  }
}

/**
 * A live read that got no answer from the provider (refused, timed out, connection lost: a thrown
 * ProviderError) is a 502 `provider_unavailable` with the error's redacted code, never a 500.
 */
function providerUnavailable(e: unknown): never {
  if (e instanceof ProviderError) {
    throw new Problem('provider_unavailable', `The provider could not be reached (${e.code})`);
  }
  throw e;
}
