import { DynamicModule, Module } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { TypeOrmModule } from '@nestjs/typeorm';
import { AuthModule } from './auth/auth.module';
import { BillingModule } from './billing/billing.module';
import { MessagingModule } from './messaging/messaging.module';
import { Clock } from './common/clock';
import { CommonModule } from './common/common.module';
import { DlrModule } from './dlr/dlr.module';
import type { AppConfig } from './config/config';
import { dataSourceOptions } from './database/data-source';
import { HealthModule } from './health/health.module';
import { MetricsController } from './metrics/metrics.controller';
import { ProviderModule } from './provider/provider.module';
import { TenantsModule } from './tenants/tenants.module';
import { WebhooksModule } from './webhooks/webhooks.module';

@Module({})
export class AppModule {
  /** `config.databaseUrl` must be resolved (main.ts starts the embedded database first when it is unset). */
  static forRoot(config: AppConfig & { databaseUrl: string }, clock?: Clock): DynamicModule {
    return {
      module: AppModule,
      imports: [
        CommonModule.forRoot(config, clock),
        TypeOrmModule.forRoot({
          ...dataSourceOptions(config.databaseUrl, config.dbPoolSize),
          migrationsRun: true,
          retryAttempts: 0,
        }),
        ScheduleModule.forRoot(),
        AuthModule,
        TenantsModule,
        ProviderModule,
        BillingModule,
        MessagingModule,
        DlrModule,
        WebhooksModule,
        HealthModule,
      ],
      controllers: [MetricsController],
    };
  }
}
