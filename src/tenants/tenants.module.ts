import { Module } from '@nestjs/common';
import { ProviderModule } from '../provider/provider.module';
import { ApiKeysService } from './api-keys.service';
import { TenantsController } from './tenants.controller';
import { TenantsService } from './tenants.service';

@Module({
  imports: [ProviderModule],
  controllers: [TenantsController],
  providers: [TenantsService, ApiKeysService],
  exports: [TenantsService, ApiKeysService],
})
export class TenantsModule {}
