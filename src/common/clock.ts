import { Injectable } from '@nestjs/common';

/** Time source. Injected everywhere a rule depends on "now", so tests can move time. */
@Injectable()
export class Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  /** Tests only: shift this process's notion of now. */
  advance(ms: number): void {
    this.offsetMs += ms;
  }
  set(date: Date): void {
    this.offsetMs = date.getTime() - Date.now();
  }
  reset(): void {
    this.offsetMs = 0;
  }
}
