import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';

/**
 * Down from the first shutdown hook on. Nest calls every onModuleDestroy before any
 * beforeApplicationShutdown, where the dispatcher and the pollers drain while HTTP still answers: a
 * load balancer sees the process not ready for the whole drain. (Terminus marks itself `shutting_down`
 * too, but in its own beforeApplicationShutdown, which may run after the drain.)
 */
@Injectable()
export class DrainingHealthIndicator implements OnModuleDestroy {
  private draining = false;

  constructor(private readonly health: HealthIndicatorService) {}

  onModuleDestroy(): void {
    this.draining = true;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  check<const Key extends string>(key: Key) {
    const indicator = this.health.check(key);
    return this.draining ? indicator.down('draining') : indicator.up();
  }
}
