import { Module } from '@nestjs/common';
import { ProviderAccountsController } from './provider-accounts.controller';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderClients } from './provider-clients.service';
import { ProviderReportsService } from './provider-reports.service';
import { ProviderWalletService } from './provider-wallet.service';

@Module({
  controllers: [ProviderAccountsController],
  providers: [ProviderAccountsService, ProviderClients, ProviderReportsService, ProviderWalletService],
  exports: [ProviderAccountsService, ProviderClients, ProviderWalletService],
})
export class ProviderModule {}
