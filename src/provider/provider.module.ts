import { Module } from '@nestjs/common';
import { ProviderAccountsController } from './provider-accounts.controller';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderClients } from './provider-clients.service';
import { ProviderBalanceService } from './provider-balance.service';
import { ProviderWalletService } from './provider-wallet.service';

@Module({
  controllers: [ProviderAccountsController],
  providers: [ProviderAccountsService, ProviderClients, ProviderBalanceService, ProviderWalletService],
  exports: [ProviderAccountsService, ProviderClients, ProviderWalletService],
})
export class ProviderModule {}
