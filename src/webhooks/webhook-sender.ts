import { Inject, Injectable } from '@nestjs/common';
import { Webhook } from 'standardwebhooks';
import { Agent, Dispatcher, RetryAgent } from 'undici';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { WebhookUrlGuard } from './url-guard';

/**
 * The closed set of attempt outcomes (named like the provider client's send outcomes):
 * - delivered: a 2xx answer.
 * - rejected: any other status (3xx included: redirects are not followed).
 * - gone: 410, the receiver says the endpoint no longer exists: it is disabled.
 * - timeout: no complete answer within WEBHOOK_TIMEOUT_MS (15 s).
 * - unreachable: DNS, connection or TLS failure.
 * - blocked: the host resolved to an address the SSRF guard refuses; nothing was sent.
 */
export type AttemptOutcome = 'delivered' | 'rejected' | 'gone' | 'timeout' | 'unreachable' | 'blocked';

export interface AttemptResult {
  outcome: AttemptOutcome;
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  /** The first EXCERPT_BYTES of the response body. */
  responseExcerpt: string | null;
}

export const EXCERPT_BYTES = 1024;

/**
 * Signs one payload with the endpoint's secrets (Standard Webhooks): `v1,<sig>` per secret, space
 * separated. The timestamp is wall-clock time, not the injectable Clock: receivers check it
 * against their own clock (±5 min in the reference libraries) to refuse replays.
 */
export function signatureHeaders(eventId: string, body: string, secrets: string[], at = new Date()) {
  return {
    'webhook-id': eventId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': secrets.map((s) => new Webhook(s).sign(eventId, at, body)).join(' '),
  };
}

@Injectable()
export class WebhookSender {
  private readonly agent: Agent;
  private readonly dispatcher: RetryAgent;
  private readonly timeoutMs: number;

  constructor(
    @Inject(APP_CONFIG) config: AppConfig,
    private readonly guard: WebhookUrlGuard,
  ) {
    this.timeoutMs = config.webhooks.timeoutMs;
    this.agent = new Agent({
      // Every new connection resolves through the guard: the socket only opens to an address it accepted.
      connect: { lookup: guard.lookup, timeout: this.timeoutMs } as Agent.Options['connect'],
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
      // Per origin, so tenants whose URLs share a host share this pool: sized for the whole process, not
      // for one endpoint (the claim already holds each endpoint to WEBHOOK_ENDPOINT_CONCURRENCY), so that
      // one tenant's hanging path cannot queue another tenant's requests behind it on the same host.
      connections: config.webhooks.concurrency,
      keepAliveTimeout: 4_000,
    });
    // A connection reset before any answer (typically a kept-alive socket the receiver closed just as the
    // next webhook went out on it: its keep-alive timer and ours race) is tried once more at once, on a new
    // connection, within the same attempt. Safe: a receiver deduplicates on webhook-id (at-least-once),
    // and it is what keeps such a race from costing the delivery a retry 5 s later (and, if that meets the
    // same race, 5 min). Answers of any status pass through as they are (statusCodes: none retried here).
    this.dispatcher = new RetryAgent(this.agent, {
      maxRetries: 1,
      minTimeout: 0,
      maxTimeout: 0,
      timeoutFactor: 1,
      retryAfter: false,
      methods: ['POST'],
      statusCodes: [],
      errorCodes: ['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'],
    });
  }

  /** After the worker stopped (the module orders it): closes kept-alive connections. */
  async close(): Promise<void> {
    await this.agent.destroy();
  }

  /**
   * One attempt. Written against undici's dispatch API (as the provider client's exchange is) rather than
   * `request()` with an `AbortSignal`: the total timeout is one timer and the shutdown abort one entry in a
   * set, where `AbortSignal.any([stop, AbortSignal.timeout()])` per request cost about 50 µs of CPU per
   * webhook (measured with `npm run bench:webhooks` and a bare undici loop: docs/benchmark.md, round 8).
   * The response body is read up to EXCERPT_BYTES; the rest is not read (the connection is then closed).
   */
  send(url: string, eventId: string, body: string, secrets: string[], stop?: AbortSignal): Promise<AttemptResult> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    const failed = (e: unknown): AttemptResult => ({
      ...classifyError(e),
      statusCode: null,
      durationMs: elapsed(),
      responseExcerpt: null,
    });
    let target: URL;
    try {
      target = new URL(url);
      this.guard.checkLiteralHost(target);
    } catch (e) {
      return Promise.resolve(failed(e));
    }
    if (stop) this.watch(stop);
    if (stop?.aborted) return Promise.resolve(failed(abortError('the gateway is stopping')));

    return new Promise<AttemptResult>((resolve) => {
      let settled = false;
      let controller: Dispatcher.DispatchController | undefined;
      let statusCode = 0;
      const chunks: Buffer[] = [];
      let size = 0;
      const settle = (result: AttemptResult) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inFlight.delete(abort);
        resolve(result);
      };
      const answered = () => {
        const outcome: AttemptOutcome =
          statusCode >= 200 && statusCode < 300 ? 'delivered' : statusCode === 410 ? 'gone' : 'rejected';
        settle({
          outcome,
          statusCode,
          error: outcome === 'delivered' ? null : `HTTP ${statusCode}`,
          durationMs: elapsed(),
          responseExcerpt: excerpt(chunks, size),
        });
      };
      const abort = (reason: Error) => {
        settle(failed(reason));
        controller?.abort(reason);
      };
      const timer = setTimeout(
        () => abort(timeoutError(`no complete answer within ${this.timeoutMs} ms`)),
        this.timeoutMs,
      );
      this.inFlight.add(abort);
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(ctrl) {
          controller = ctrl;
          if (settled) ctrl.abort(abortError('abandoned before it was written'));
        },
        onResponseStart(_ctrl, status) {
          statusCode = status;
        },
        onResponseData(ctrl, chunk) {
          chunks.push(chunk);
          size += chunk.length;
          if (size >= EXCERPT_BYTES) {
            answered(); // enough for the log: the rest is not read
            ctrl.abort(abortError('excerpt read'));
          }
        },
        onResponseEnd() {
          answered();
        },
        onResponseError(_ctrl, err) {
          settle(failed(err));
        },
      };
      try {
        this.dispatcher.dispatch(
          {
            origin: target.origin,
            path: `${target.pathname}${target.search}`,
            method: 'POST',
            headers: {
              'content-type': 'application/json',
              'user-agent': 'Gerbang-Webhooks/1',
              ...signatureHeaders(eventId, body, secrets),
            },
            body,
          },
          handler,
        );
      } catch (e) {
        settle(failed(e));
      }
    });
  }

  /** Attempts in flight, by their abort: a stop signal aborts them all (they are then recorded as interrupted). */
  private readonly inFlight = new Set<(reason: Error) => void>();
  private readonly watched = new WeakSet<AbortSignal>();
  private watch(stop: AbortSignal): void {
    if (this.watched.has(stop)) return;
    this.watched.add(stop);
    stop.addEventListener(
      'abort',
      () => {
        for (const abort of [...this.inFlight]) abort(abortError('the gateway is stopping'));
      },
      { once: true },
    );
  }
}

const timeoutError = (message: string) => Object.assign(new Error(message), { name: 'TimeoutError' });
const abortError = (message: string) => Object.assign(new Error(message), { name: 'AbortError' });

/** The first EXCERPT_BYTES of a body, cut at a character boundary (a split multi-byte character is dropped). */
function excerpt(chunks: Buffer[], size: number): string | null {
  if (size === 0) return null;
  return new TextDecoder('utf-8', { fatal: false })
    .decode(Buffer.concat(chunks).subarray(0, EXCERPT_BYTES))
    .replace(/\uFFFD$/, '')
    .replaceAll('\u0000', '');
}

function classifyError(e: unknown): { outcome: AttemptOutcome; error: string } {
  const chain: { name?: string; code?: string; message?: string }[] = [];
  for (let x = e as { cause?: unknown } | undefined, i = 0; x && i < 5; x = x.cause as typeof x, i++)
    chain.push(x as never);
  const has = (pred: (x: { name?: string; code?: string }) => boolean) => chain.some(pred);
  const message = chain.map((x) => x.message).find(Boolean) ?? String(e);
  if (has((x) => x.code === 'WEBHOOK_ADDRESS_BLOCKED')) return { outcome: 'blocked', error: message };
  if (
    has(
      (x) =>
        x.name === 'TimeoutError' ||
        x.name === 'AbortError' ||
        x.code === 'UND_ERR_HEADERS_TIMEOUT' ||
        x.code === 'UND_ERR_BODY_TIMEOUT' ||
        x.code === 'UND_ERR_CONNECT_TIMEOUT',
    )
  )
    return { outcome: 'timeout', error: message.slice(0, 500) };
  return { outcome: 'unreachable', error: message.slice(0, 500) };
}
