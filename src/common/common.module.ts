import { DynamicModule, Global, Module } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { Clock } from './clock';
import { SecretBox } from './secret-box';

@Global()
@Module({})
export class CommonModule {
  static forRoot(config: AppConfig, clock: Clock = new Clock()): DynamicModule {
    return {
      module: CommonModule,
      providers: [
        { provide: APP_CONFIG, useValue: config },
        { provide: Clock, useValue: clock },
        { provide: SecretBox, useValue: new SecretBox(config.encryptionKey) },
      ],
      exports: [APP_CONFIG, Clock, SecretBox],
    };
  }
}
