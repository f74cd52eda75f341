import { Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { ProviderAccountsController } from './provider-accounts.controller';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderClients } from './provider-clients.service';
import { ProviderReportsService } from './provider-reports.service';
import { ProviderWalletService } from './provider-wallet.service';

@Module({
  // forRoot() is idempotent (a global module, deduplicated by Nest if another module imports it too).
  imports: [ScheduleModule.forRoot()],
  controllers: [ProviderAccountsController],
  providers: [ProviderAccountsService, ProviderClients, ProviderReportsService, ProviderWalletService],
  exports: [ProviderAccountsService, ProviderClients, ProviderWalletService],
})
export class ProviderModule {}
