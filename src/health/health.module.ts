import { Module } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { HealthController } from './health.controller';
import { DrainingHealthIndicator } from './draining.health';
import { MigrationsHealthIndicator } from './migrations.health';

/**
 * `/health/live` and `/health/ready` (API.md), checked with @nestjs/terminus. Terminus's logger is off:
 * a failed readiness probe during a database outage is an expected answer, not an error to log every
 * few seconds (connection errors are logged where requests meet them).
 */
@Module({
  imports: [TerminusModule.forRoot({ logger: false })],
  controllers: [HealthController],
  providers: [MigrationsHealthIndicator, DrainingHealthIndicator],
})
export class HealthModule {}
