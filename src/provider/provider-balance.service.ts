import { Injectable } from '@nestjs/common';
import { Problem } from '../common/problem';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderBalanceDto } from './provider-accounts.dto';
import { ProviderWalletService } from './provider-wallet.service';

/**
 * Live reads from the provider for admins: balance.php. (reports_post.php reconciled against our records is
 * src/dlr's `ReportReconciliationsService`: it applies reports.)
 */
@Injectable()
export class ProviderBalanceService {
  constructor(
    private readonly accounts: ProviderAccountsService,
    private readonly wallet: ProviderWalletService,
  ) {}

  /**
   * A live read of balance.php, applied like a scheduled poll (history row, alert, hold/release). When the
   * provider gives no answer at all (refused, timed out, connection lost) this is 502 `provider_unavailable`
   * (API.md: "the provider could not be reached for a live read"), as for the report; the detail names the
   * last known value. An answer that is not a balance (e.g. wrong credentials) is 200 with `live: null` and
   * its `error`, beside the last known value.
   */
  async balance(publicId: string): Promise<ProviderBalanceDto> {
    const account = await this.accounts.findEntity(publicId);
    const check = await this.wallet.check(account.id, 'live');
    const fresh = await this.accounts.findEntity(publicId);
    if (check.kind === 'error' && check.noAnswer) {
      const last =
        fresh.lastBalance === null
          ? 'none yet'
          : `${fresh.lastBalance} (valid until ${fresh.lastBalanceExpiresAt?.toISOString() ?? 'unknown'}, read at ${fresh.lastBalanceCheckedAt?.toISOString() ?? 'unknown'})`;
      throw new Problem(
        'provider_unavailable',
        `The provider could not be reached (${check.reason}); last known balance: ${last}`,
      );
    }
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
}
