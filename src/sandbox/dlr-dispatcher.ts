import { Agent, request } from 'undici';
import type { Logger } from 'pino';
import type { SandboxKnobs, SeededRandom } from './sandbox-knobs';
import { CODE_TEXT, type SandboxLedger, type SandboxMessage } from './sandbox-state';

/** One callback the sandbox tried to deliver (for tests and the admin endpoint). */
export interface CallbackAttempt {
  sessionId: string;
  code: number;
  /** A late 20 sent after the 22 (outOfOrderDlr). */
  stale: boolean;
  /** Second delivery of the same report (duplicateDlrRate). */
  duplicate: boolean;
  /** Origin and path of the callback URL (its query may carry a token, so it is not kept). */
  target: string;
  at: Date;
  httpStatus?: number;
  error?: string;
}

interface PlannedCallback {
  code: number;
  atMs: number;
  stale: boolean;
  duplicate: boolean;
}

/**
 * Turns a taken message into its delivery reports:
 * - report.php's status follows the message's true code sequence (e.g. 20 then 22), one step per
 *   `dlrDelayMs`;
 * - callbacks (HTTP GET `session_id`, `error_code`, `error_message`, `msisdn` to the account's URL)
 *   follow the same timeline, bent by the knobs: dropped, duplicated, out of order (22 then a stale
 *   20), or the first one delivered before the send is answered.
 * A callback is tried once (the provider documents no retry); failures are recorded, not retried.
 */
export class DlrDispatcher {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly attempts: CallbackAttempt[] = [];
  private readonly agent = new Agent({
    connectTimeout: 2_000,
    headersTimeout: 5_000,
    bodyTimeout: 5_000,
    keepAliveTimeout: 2_000,
  });
  private closed = false;

  constructor(
    private readonly ledger: SandboxLedger,
    private readonly rng: SeededRandom,
    private readonly knobs: () => SandboxKnobs,
    private readonly log?: Logger,
  ) {}

  /**
   * Plans the reports of a message. The returned promise settles once every callback that must
   * arrive before the send answer (dlrBeforeSendAnswer) has been answered by the receiver.
   */
  plan(message: SandboxMessage): Promise<void> {
    const knobs = this.knobs();
    const drop = this.rng.chance(knobs.dropDlrRate);
    const duplicate = this.rng.chance(knobs.duplicateDlrRate);
    const final = message.codes[message.codes.length - 1];
    const outOfOrder = final === 22 && this.rng.chance(knobs.outOfOrderDlr);
    const early = this.rng.chance(knobs.dlrBeforeSendAnswer);

    // True timeline: what report.php says, and when.
    let t = early ? 0 : this.rng.between(knobs.dlrDelayMs);
    const timeline = message.codes.map((code, i) => {
      if (i > 0) t += this.rng.between(knobs.dlrDelayMs);
      return { code, atMs: t };
    });
    for (const step of timeline) this.at(step.atMs, () => (message.statusCode = step.code));

    let callbacks: PlannedCallback[] = timeline.map((s) => ({ ...s, stale: false, duplicate: false }));
    if (outOfOrder) {
      // 22 arrives first, then a 20 that is older news: at the first slot the 22, later the stale 20.
      const first = timeline[0].atMs;
      const later =
        timeline.length > 1 ? timeline[timeline.length - 1].atMs : first + this.rng.between(knobs.dlrDelayMs);
      callbacks = [
        { code: 22, atMs: first, stale: false, duplicate: false },
        { code: 20, atMs: later, stale: true, duplicate: false },
      ];
    }
    if (duplicate) {
      const last = callbacks.filter((c) => !c.stale).pop()!;
      callbacks.push({
        ...last,
        atMs: Math.max(...callbacks.map((c) => c.atMs)) + this.rng.between(knobs.dlrDelayMs),
        duplicate: true,
      });
    }
    if (drop) callbacks = [];

    const beforeAnswer: Promise<void>[] = [];
    for (const cb of callbacks) {
      if (cb.atMs === 0 && early) beforeAnswer.push(this.deliver(message, cb));
      else this.at(cb.atMs, () => void this.deliver(message, cb));
    }
    return Promise.all(beforeAnswer).then(() => undefined);
  }

  callbacks(): CallbackAttempt[] {
    return this.attempts.map((a) => ({ ...a }));
  }

  /** Cancels every planned report (reset). */
  cancelAll(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.attempts.length = 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cancelAll();
    await this.agent.destroy();
  }

  private at(delayMs: number, fn: () => void): void {
    if (delayMs <= 0) {
      fn();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn();
    }, delayMs);
    timer.unref();
    this.timers.add(timer);
  }

  private async deliver(message: SandboxMessage, cb: PlannedCallback): Promise<void> {
    const callbackUrl = this.ledger.account(message.username)?.callbackUrl;
    if (!callbackUrl || this.closed) return;
    let url: URL;
    try {
      url = new URL(callbackUrl);
    } catch {
      this.log?.warn({ username: message.username }, 'sandbox: invalid callback URL');
      return;
    }
    const text = CODE_TEXT[cb.code]?.callback ?? 'Unknown';
    // %20 rather than `+` for spaces, as the provider's sample shows `error_message=Expiration Period`.
    const query = [
      ['session_id', message.id],
      ['error_code', String(cb.code)],
      ['error_message', text],
      ['msisdn', message.msisdn],
    ]
      .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
      .join('&');
    url.search = url.search ? `${url.search.slice(1)}&${query}` : query;
    const attempt: CallbackAttempt = {
      sessionId: message.id,
      code: cb.code,
      stale: cb.stale,
      duplicate: cb.duplicate,
      target: `${url.origin}${url.pathname}`,
      at: new Date(),
    };
    this.attempts.push(attempt);
    try {
      const res = await request(url, { method: 'GET', dispatcher: this.agent });
      await res.body.dump();
      attempt.httpStatus = res.statusCode;
    } catch (err) {
      attempt.error = (err as { code?: string }).code ?? (err instanceof Error ? err.message : String(err));
      this.log?.warn({ sessionId: message.id, code: cb.code, error: attempt.error }, 'sandbox: DLR callback failed');
    }
  }
}
