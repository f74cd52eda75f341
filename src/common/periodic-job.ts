import type { SchedulerRegistry } from '@nestjs/schedule';

/**
 * A periodic job registered with `@nestjs/schedule`'s SchedulerRegistry under `name` (so it shows in the
 * registry and nothing else starts it twice). A tick while the previous run is still going does nothing:
 * a slow run is never overlapped within one process (other processes coordinate through the database).
 * `stop()` unregisters the timer and waits for the run in progress, so its results are recorded before
 * the pool closes. Errors of a run go to `onError`; the next tick runs again.
 */
export class PeriodicJob {
  private running: Promise<void> | undefined;

  constructor(
    private readonly scheduler: SchedulerRegistry,
    private readonly name: string,
    private readonly run: () => Promise<unknown>,
    private readonly onError: (err: Error) => void,
  ) {}

  /** Starts ticking every `everyMs` (no-op when already started). The timer does not keep the process alive. */
  start(everyMs: number): void {
    if (this.scheduler.doesExist('interval', this.name)) return;
    const timer = setInterval(() => this.tick(), everyMs);
    timer.unref();
    this.scheduler.addInterval(this.name, timer);
  }

  /** Stops ticking and waits for the run in progress, if any. */
  async stop(): Promise<void> {
    if (this.scheduler.doesExist('interval', this.name)) this.scheduler.deleteInterval(this.name);
    await this.running;
  }

  /** Resolves once no run is in progress. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Runs once now (e.g. at boot, before the first interval), unless a run is already in progress. */
  runNow(): Promise<void> {
    this.tick();
    return this.idle();
  }

  private tick(): void {
    if (this.running) return;
    this.running = this.run()
      .then(
        () => undefined,
        (e: Error) => this.onError(e),
      )
      .finally(() => (this.running = undefined));
  }
}
