import { Module } from '@nestjs/common';
import { MessageReadsModule } from '../messaging/message-reads.module';
import { ProviderAccountsController } from './provider-accounts.controller';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderClients } from './provider-clients.service';
import { ProviderReportsService } from './provider-reports.service';
import { ProviderWalletService } from './provider-wallet.service';

@Module({
  imports: [MessageReadsModule],
  controllers: [ProviderAccountsController],
  providers: [ProviderAccountsService, ProviderClients, ProviderReportsService, ProviderWalletService],
  exports: [ProviderAccountsService, ProviderClients, ProviderWalletService],
})
export class ProviderModule {}
