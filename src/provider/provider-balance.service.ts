import { Injectable } from '@nestjs/common';
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
}
