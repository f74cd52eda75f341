/**
 * Per-account admission for sends: at most `maxInFlight` requests at once and a token bucket of
 * `ratePerSecond` (burst `burst`). A caller that cannot be admitted at once waits in a FIFO queue
 * for at most `maxWaitMs`; after that it is refused with an estimate of when to come back, and the
 * client turns that into `unavailable` (work held, nothing sent, not an attempt).
 *
 * Why a short wait and not a long queue: the durable queue is the database (the messaging module);
 * an in-memory queue here would only hide back-pressure and lose work on a crash. The short wait
 * smooths bursts so a busy worker is not bounced for a slot that frees a few ms later.
 */
export interface SendGateOptions {
  maxInFlight: number;
  /** Infinity (or 0) disables the rate limit. */
  ratePerSecond: number;
  burst?: number;
  maxWaitMs: number;
  /** Upper bound of callers waiting at once; more are refused at once. */
  maxWaiters?: number;
  now?: () => number;
}

export type Admission =
  { admitted: true; release: () => void } | { admitted: false; retryAfterMs: number; reason: string };

interface Waiter {
  resolve: (admission: Admission) => void;
  timer: NodeJS.Timeout;
}

export class SendGate {
  private inFlight = 0;
  private tokens: number;
  private lastRefill: number;
  private readonly waiters: Waiter[] = [];
  private pumpTimer?: NodeJS.Timeout;
  private readonly rate: number;
  private readonly burst: number;
  private readonly now: () => number;

  constructor(private readonly options: SendGateOptions) {
    if (!(options.maxInFlight >= 1)) throw new RangeError('maxInFlight must be at least 1');
    this.rate = options.ratePerSecond > 0 ? options.ratePerSecond : Infinity;
    this.burst = Number.isFinite(this.rate) ? Math.max(1, options.burst ?? Math.ceil(this.rate)) : Infinity;
    this.tokens = this.burst;
    this.now = options.now ?? Date.now;
    this.lastRefill = this.now();
  }

  get inFlightCount(): number {
    return this.inFlight;
  }

  get waitingCount(): number {
    return this.waiters.length;
  }

  acquire(): Promise<Admission> {
    // Waiters go first: a newcomer must not overtake someone already queued.
    if (this.waiters.length === 0) {
      const now = this.tryTake();
      if (now) return Promise.resolve(now);
    }
    if (this.options.maxWaitMs <= 0 || this.waiters.length >= (this.options.maxWaiters ?? 10_000)) {
      return Promise.resolve(this.refusal());
    }
    return new Promise<Admission>((resolve) => {
      const waiter: Waiter = {
        resolve,
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(this.refusal());
        }, this.options.maxWaitMs),
      };
      this.waiters.push(waiter);
      this.schedulePump();
    });
  }

  /** Refuses every waiter (used by close()). */
  drain(reason: string): void {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve({ admitted: false, retryAfterMs: 0, reason });
    }
    if (this.pumpTimer) clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
  }

  private refill(): void {
    if (!Number.isFinite(this.rate)) return;
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.lastRefill) / 1000) * this.rate);
    this.lastRefill = now;
  }

  private tryTake(): Admission | undefined {
    this.refill();
    if (this.inFlight >= this.options.maxInFlight || this.tokens < 1) return undefined;
    this.inFlight++;
    if (Number.isFinite(this.rate)) this.tokens -= 1;
    let released = false;
    return {
      admitted: true,
      release: () => {
        // Idempotent: a double release must not inflate capacity.
        if (released) return;
        released = true;
        this.inFlight--;
        this.pump();
      },
    };
  }

  private msUntilToken(): number {
    if (!Number.isFinite(this.rate) || this.tokens >= 1) return 0;
    return Math.ceil(((1 - this.tokens) / this.rate) * 1000);
  }

  private refusal(): Admission {
    this.refill();
    if (this.inFlight >= this.options.maxInFlight) {
      return {
        admitted: false,
        retryAfterMs: Math.max(50, this.msUntilToken()),
        reason: `in-flight limit (${this.options.maxInFlight}) reached`,
      };
    }
    return {
      admitted: false,
      retryAfterMs: Math.max(1, this.msUntilToken()),
      reason: `send rate limit (${this.rate}/s) reached`,
    };
  }

  private pump(): void {
    while (this.waiters.length > 0) {
      const admission = this.tryTake();
      if (!admission) break;
      const waiter = this.waiters.shift()!;
      clearTimeout(waiter.timer);
      waiter.resolve(admission);
    }
    this.schedulePump();
  }

  /** When waiters are blocked only by the bucket, wake up when the next token is due. */
  private schedulePump(): void {
    if (this.pumpTimer || this.waiters.length === 0 || this.inFlight >= this.options.maxInFlight) return;
    this.pumpTimer = setTimeout(
      () => {
        this.pumpTimer = undefined;
        this.pump();
      },
      Math.max(1, this.msUntilToken()),
    );
  }
}
