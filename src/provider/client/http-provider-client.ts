import { Pool } from 'undici';
import {
  BrokenCircuitError,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type CircuitBreakerPolicy,
} from 'cockatiel';
import type { Logger } from 'pino';
import { resolvePolledCode } from './dlr-codes';
import { performExchange, type Exchange, type ExchangeRequest } from './http-exchange';
import {
  excerpt,
  formatProviderDate,
  parseBalanceBody,
  parseCsvReport,
  parseInboxBody,
  parseReportBody,
  storableText,
} from './parsers';
import type {
  BalanceResult,
  DownloadReportResult,
  InboxResult,
  ProviderAccountConfig,
  ProviderClient,
  ReportResult,
  SendOutcome,
} from './provider-client';
import { ProviderError } from './provider-error';
import { providerCircuitOpen, providerRequestDuration, providerRequests } from './provider-metrics';
import { SecretRedactor } from './redact';
import { classifySendExchange, describeTransportFailure } from './send-classifier';
import { SendGate } from './send-gate';

export interface HttpProviderClientOptions {
  /** TCP (+TLS) connect timeout. Default 10 s (the provider's PHP sample uses 60 s). */
  connectTimeoutMs?: number;
  /** Whole exchange, from dispatch (including waiting for a pooled connection) to the last byte. Default 30 s. */
  totalTimeoutMs?: number;
  /** Total timeout of reports_post.php, which returns a whole file. Default 60 s. */
  downloadTimeoutMs?: number;
  /** Keep-alive connections to the provider for this account. Default 50 (= maxInFlight). */
  maxConnections?: number;
  /** Idle keep-alive sockets are closed after this (undici also honours a server `Keep-Alive: timeout`). Default 4 s. */
  keepAliveTimeoutMs?: number;
  /** Sends in flight at once for this account. Default 50. */
  maxInFlight?: number;
  /** Token bucket rate of sends for this account; Infinity or 0 = no limit. Default 50/s. */
  sendRatePerSecond?: number;
  /** Token bucket size. Default: one second of the rate. */
  sendBurst?: number;
  /** How long a send may wait for an in-flight slot or a token before it is `unavailable`. Default 250 ms. */
  maxAdmissionWaitMs?: number;
  /** Consecutive notSent/uncertain sends that open the breaker. Default 5. */
  breakerThreshold?: number;
  /** How long an open breaker holds sends before one probe is let through. Default 30 s. */
  breakerHalfOpenAfterMs?: number;
  /** Largest accepted body for send/report/balance/inbox. Default 1 MiB. */
  maxResponseBytes?: number;
  /** Largest accepted downloaded report. Default 64 MiB. */
  maxDownloadBytes?: number;
  logger?: Logger;
}

const DEFAULTS = {
  connectTimeoutMs: 10_000,
  totalTimeoutMs: 30_000,
  downloadTimeoutMs: 60_000,
  maxInFlight: 50,
  keepAliveTimeoutMs: 4_000,
  sendRatePerSecond: 50,
  maxAdmissionWaitMs: 250,
  breakerThreshold: 5,
  breakerHalfOpenAfterMs: 30_000,
  maxResponseBytes: 1024 * 1024,
  maxDownloadBytes: 64 * 1024 * 1024,
} as const;

type Operation = 'send' | 'report' | 'balance' | 'downloadReport' | 'inbox';

/** A sentinel the breaker counts as a failure: an outcome that says the provider path is unhealthy. */
const breakerFailure = (outcome: unknown) => {
  const kind = (outcome as SendOutcome | undefined)?.kind;
  return kind === 'notSent' || kind === 'uncertain';
};

/**
 * `ProviderClient` over HTTP with undici: one keep-alive `Pool` per provider account.
 * Send path: breaker check → admission (in-flight + rate) → breaker.execute(exchange) → classification.
 * The breaker wraps only the network call, so a refused admission never counts as a breaker success
 * (which would close a half-open breaker without a real probe).
 */
export class HttpProviderClient implements ProviderClient {
  readonly accountId: string;
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly redactor: SecretRedactor;
  private readonly gate: SendGate;
  private readonly breaker: CircuitBreakerPolicy;
  private readonly log?: Logger;
  private readonly opts: Required<Omit<HttpProviderClientOptions, 'logger' | 'sendBurst' | 'maxConnections'>> & {
    maxConnections: number;
    sendBurst?: number;
  };
  private breakerOpenedAt = 0;
  /** The admission limits this client's send gate was built with (0 = no rate limit). */
  readonly sendLimits: { sendRatePerSecond: number; maxInFlight: number };
  private closed = false;
  private closing?: Promise<void>;

  constructor(
    private readonly account: ProviderAccountConfig,
    options: HttpProviderClientOptions = {},
  ) {
    this.accountId = account.accountId;
    this.redactor = new SecretRedactor([account.password]);
    const defined = Object.fromEntries(
      Object.entries(options).filter(([, v]) => v !== undefined),
    ) as HttpProviderClientOptions;
    const merged = { ...DEFAULTS, ...defined };
    this.opts = { ...merged, maxConnections: merged.maxConnections ?? merged.maxInFlight };
    this.log = options.logger?.child({ component: 'provider-client', accountId: account.accountId });

    let base: URL;
    try {
      base = new URL(account.baseUrl);
    } catch {
      throw new ProviderError('invalid_config', 'provider baseUrl is not a URL', account.accountId);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new ProviderError('invalid_config', 'provider baseUrl must be http or https', account.accountId);
    }
    if (base.username || base.password || base.search || base.hash) {
      throw new ProviderError(
        'invalid_config',
        'provider baseUrl must not carry credentials, a query or a fragment',
        account.accountId,
      );
    }
    this.basePath = base.pathname.replace(/\/+$/, '');

    this.pool = new Pool(base.origin, {
      connections: this.opts.maxConnections,
      // Never pipeline: undici re-writes pipelined requests queued behind a failed one (a duplicate send).
      pipelining: 1,
      connectTimeout: this.opts.connectTimeoutMs,
      keepAliveTimeout: this.opts.keepAliveTimeoutMs,
      // Backstops only: the total timeout of performExchange fires first.
      headersTimeout: Math.max(this.opts.totalTimeoutMs, this.opts.downloadTimeoutMs) + 1_000,
      bodyTimeout: Math.max(this.opts.totalTimeoutMs, this.opts.downloadTimeoutMs) + 1_000,
    });

    this.sendLimits = {
      sendRatePerSecond: Number.isFinite(this.opts.sendRatePerSecond) ? this.opts.sendRatePerSecond : 0,
      maxInFlight: this.opts.maxInFlight,
    };
    this.gate = new SendGate({
      maxInFlight: this.opts.maxInFlight,
      ratePerSecond: this.opts.sendRatePerSecond,
      burst: this.opts.sendBurst,
      maxWaitMs: this.opts.maxAdmissionWaitMs,
    });

    this.breaker = circuitBreaker(handleWhen(() => true).orWhenResult(breakerFailure), {
      halfOpenAfter: this.opts.breakerHalfOpenAfterMs,
      breaker: new ConsecutiveBreaker(this.opts.breakerThreshold),
    });
    providerCircuitOpen.set({ account: this.accountId }, 0);
    this.breaker.onBreak(() => {
      this.breakerOpenedAt = Date.now();
      providerCircuitOpen.set({ account: this.accountId }, 1);
      this.log?.warn({ halfOpenAfterMs: this.opts.breakerHalfOpenAfterMs }, 'provider circuit opened: sends are held');
    });
    this.breaker.onHalfOpen(() => this.log?.info('provider circuit half-open: probing with one send'));
    this.breaker.onReset(() => {
      providerCircuitOpen.set({ account: this.accountId }, 0);
      this.log?.info('provider circuit closed');
    });
  }

  /** For health/ops: the breaker state of this account's sends. */
  get circuitState(): 'closed' | 'open' | 'halfOpen' {
    const s = this.breaker.state;
    return s === CircuitState.Closed ? 'closed' : s === CircuitState.HalfOpen ? 'halfOpen' : 'open';
  }

  async send(msisdn: string, text: string): Promise<SendOutcome> {
    const outcome = await this.sendUnredacted(msisdn, text);
    const safe = this.redactOutcome(outcome);
    providerRequests.inc({ operation: 'send', outcome: safe.kind });
    if (safe.kind === 'accepted') this.log?.debug({ providerMessageId: safe.providerMessageId }, 'send accepted');
    else if (safe.kind === 'unavailable')
      this.log?.debug({ reason: safe.reason, retryAfterMs: safe.retryAfterMs }, 'send held');
    // Only the category of the reason is logged: its detail may quote the provider's body, which
    // can echo the message text (a debug page); the caller has the full, redacted reason.
    else
      this.log?.warn(
        {
          outcome: safe.kind,
          reason: reasonCategory(safe.reason),
          httpStatus: 'httpStatus' in safe ? safe.httpStatus : undefined,
        },
        `send ${safe.kind}`,
      );
    return safe;
  }

  private async sendUnredacted(msisdn: string, text: string): Promise<SendOutcome> {
    if (this.closed)
      return {
        kind: 'unavailable',
        reason: 'provider client closed (account reconfigured or shutting down)',
        retryAfterMs: 0,
      };

    // Open and not yet due for a probe, or a probe in flight: hold without taking an admission slot.
    const state = this.breaker.state;
    if (state === CircuitState.HalfOpen) return this.heldByBreaker('circuit half-open: a probe send is in flight');
    if ((state === CircuitState.Open && this.msUntilProbe() > 0) || state === CircuitState.Isolated) {
      return this.heldByBreaker('circuit open after repeated transport failures');
    }

    const admission = await this.gate.acquire();
    if (!admission.admitted)
      return { kind: 'unavailable', reason: admission.reason, retryAfterMs: admission.retryAfterMs };
    let exchange: Exchange | undefined;
    try {
      const request = this.sendRequest(msisdn, text);
      return await this.breaker.execute(async () => {
        exchange = await this.exchange('send', request, this.opts.totalTimeoutMs, this.opts.maxResponseBytes);
        return classifySendExchange(exchange);
      });
    } catch (err) {
      if (err instanceof BrokenCircuitError)
        return this.heldByBreaker('circuit open after repeated transport failures');
      // performExchange never rejects, so this is a bug; still classify by what reached the socket.
      const written = exchange !== undefined && (exchange.type === 'response' || exchange.written);
      const reason = `client error ${written ? 'after' : 'before'} the request was written: ${err instanceof Error ? err.message : String(err)}`;
      return written ? { kind: 'uncertain', reason } : { kind: 'notSent', reason };
    } finally {
      admission.release();
    }
  }

  private msUntilProbe(): number {
    return this.breakerOpenedAt + this.opts.breakerHalfOpenAfterMs - Date.now();
  }

  private heldByBreaker(reason: string): SendOutcome {
    const halfOpen = this.breaker.state === CircuitState.HalfOpen;
    // Half-open: the probe decides within one total timeout at most; come back soon, not at once.
    const retryAfterMs = halfOpen
      ? Math.min(1_000, this.opts.breakerHalfOpenAfterMs)
      : Math.max(100, this.msUntilProbe());
    return { kind: 'unavailable', reason, retryAfterMs };
  }

  private sendRequest(msisdn: string, text: string): ExchangeRequest {
    const fields = new URLSearchParams({
      username: this.account.username,
      password: this.account.password,
      hp: msisdn,
      message: text,
    });
    if (this.account.sendMethod === 'get') {
      return { method: 'GET', path: `${this.basePath}/send.php?${fields.toString()}`, headers: this.headers() };
    }
    return {
      method: 'POST',
      path: `${this.basePath}/send_post.php`,
      body: fields.toString(),
      headers: { ...this.headers(), 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
    };
  }

  async report(providerMessageId: string): Promise<ReportResult> {
    // The id goes into a URL: only an id as the provider issues it (digits) is accepted.
    if (!/^[0-9]{1,30}$/.test(providerMessageId)) {
      throw new ProviderError('invalid_argument', 'provider message id must be digits', this.accountId, 'report');
    }
    // The provider documents report.php with `rpt` only (no credentials), so none are sent.
    const res = await this.request('report', {
      method: 'GET',
      path: `${this.basePath}/report.php?rpt=${providerMessageId}`,
      headers: this.headers(),
    });
    const raw = this.outgoing(res.body);
    let result: ReportResult;
    if (!isOk(res.status)) result = { kind: 'error', reason: `HTTP ${res.status}`, raw, httpStatus: res.status };
    else {
      const parsed = parseReportBody(res.body);
      result =
        parsed.kind === 'report'
          ? {
              kind: 'report',
              code: parsed.code,
              resolvedCode: resolvePolledCode(parsed.code, parsed.text),
              text: this.outgoing(parsed.text),
              raw,
            }
          : { kind: 'none', raw };
    }
    providerRequests.inc({ operation: 'report', outcome: result.kind });
    return result;
  }

  async balance(): Promise<BalanceResult> {
    const res = await this.request('balance', {
      method: 'GET',
      path: `${this.basePath}/balance.php?${this.credentials().toString()}`,
      headers: this.headers(),
    });
    const raw = this.outgoing(res.body);
    let result: BalanceResult;
    if (!isOk(res.status))
      result = { kind: 'error', reason: `HTTP ${res.status}: ${excerpt(raw)}`, raw, httpStatus: res.status };
    else {
      const parsed = parseBalanceBody(res.body);
      result = parsed.ok
        ? { kind: 'balance', balance: parsed.balance, expiresAt: parsed.expiresAt, raw }
        : { kind: 'error', reason: this.outgoing(parsed.reason), raw, httpStatus: res.status };
    }
    providerRequests.inc({ operation: 'balance', outcome: result.kind });
    return result;
  }

  async downloadReport(start: Date, end: Date): Promise<DownloadReportResult> {
    const fields = this.credentials();
    fields.set('start', formatProviderDate(start));
    fields.set('end', formatProviderDate(end));
    fields.set('download_report_button', 'Download');
    const res = await this.request(
      'downloadReport',
      {
        method: 'POST',
        path: `${this.basePath}/reports_post.php`,
        body: fields.toString(),
        headers: { ...this.headers(), 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
      },
      this.opts.downloadTimeoutMs,
      this.opts.maxDownloadBytes,
    );
    const raw = this.outgoing(res.body);
    let result: DownloadReportResult;
    if (!isOk(res.status))
      result = { kind: 'error', reason: `HTTP ${res.status}: ${excerpt(raw)}`, raw, httpStatus: res.status };
    else {
      const parsed = parseCsvReport(res.body);
      result = parsed.ok
        ? { kind: 'report', header: parsed.header, rows: parsed.rows, raw }
        : { kind: 'error', reason: this.outgoing(parsed.reason), raw, httpStatus: res.status };
    }
    providerRequests.inc({ operation: 'downloadReport', outcome: result.kind });
    return result;
  }

  async inbox(): Promise<InboxResult> {
    const res = await this.request('inbox', {
      method: 'GET',
      path: `${this.basePath}/inbox.php?${this.credentials().toString()}`,
      headers: this.headers(),
    });
    const raw = this.outgoing(res.body);
    let result: InboxResult;
    if (!isOk(res.status))
      result = { kind: 'error', reason: `HTTP ${res.status}: ${excerpt(raw)}`, raw, httpStatus: res.status };
    else {
      const parsed = parseInboxBody(res.body);
      result = parsed.ok
        ? { kind: 'inbox', items: parsed.items, raw }
        : { kind: 'error', reason: this.outgoing(parsed.reason), raw, httpStatus: res.status };
    }
    providerRequests.inc({ operation: 'inbox', outcome: result.kind });
    return result;
  }

  close(): Promise<void> {
    if (!this.closing) {
      this.closed = true;
      this.gate.drain('provider client closed');
      providerCircuitOpen.remove({ account: this.accountId });
      // close() lets requests already dispatched finish; it never aborts a send in flight.
      this.closing = this.pool.close().catch(() => undefined);
    }
    return this.closing;
  }

  // -------------------------------------------------------------------------------------------

  private headers(): Record<string, string> {
    return { 'user-agent': 'gerbang-provider-client/1', accept: 'text/plain, text/csv, application/json, */*;q=0.5' };
  }

  private credentials(): URLSearchParams {
    return new URLSearchParams({ username: this.account.username, password: this.account.password });
  }

  /** One exchange with duration metrics. Never rejects. */
  private async exchange(
    operation: Operation,
    request: ExchangeRequest,
    totalTimeoutMs: number,
    maxBodyBytes: number,
  ): Promise<Exchange> {
    if (this.closed && operation !== 'send') {
      return {
        type: 'failure',
        written: false,
        code: 'UND_ERR_CLOSED',
        message: 'provider client closed',
        durationMs: 0,
      };
    }
    const result = await performExchange(this.pool, request, { totalTimeoutMs, maxBodyBytes });
    providerRequestDuration.observe({ operation }, result.durationMs / 1000);
    return result;
  }

  /** A non-send exchange: a response of any status, or a ProviderError with a redacted message. */
  private async request(
    operation: Exclude<Operation, 'send'>,
    request: ExchangeRequest,
    totalTimeoutMs = this.opts.totalTimeoutMs,
    maxBodyBytes = this.opts.maxResponseBytes,
  ): Promise<Extract<Exchange, { type: 'response' }>> {
    const result = await this.exchange(operation, request, totalTimeoutMs, maxBodyBytes);
    if (result.type === 'response') return result;
    const code =
      result.code === 'UND_ERR_CLOSED' || result.code === 'UND_ERR_DESTROYED'
        ? 'client_closed'
        : result.code === 'RESPONSE_TOO_LARGE'
          ? 'response_too_large'
          : !result.written
            ? 'unreachable'
            : result.code === 'TOTAL_TIMEOUT' || result.code.endsWith('_TIMEOUT')
              ? 'timeout'
              : 'connection_lost';
    const message = this.outgoing(`${operation}: ${describeTransportFailure(result)}`);
    providerRequests.inc({ operation, outcome: code });
    this.log?.warn(
      { operation, code, reason: reasonCategory(describeTransportFailure(result)) },
      'provider request failed',
    );
    throw new ProviderError(code, message, this.accountId, operation);
  }

  /**
   * Provider text as it may leave the client (reasons, raw bodies, report texts, error messages): the password
   * masked, and storable (no NUL, no lone surrogate). Callers store these texts; a NUL in a body (a PHP page, a
   * binary error) made PostgreSQL refuse the write: a rejected send's outcome was never recorded (the message
   * went to the lease janitor and `uncertain` instead of failed and refunded), and a balance read was a 500.
   */
  private outgoing(text: string): string {
    return storableText(this.redactor.redact(text));
  }

  private redactOutcome(outcome: SendOutcome): SendOutcome {
    const r = (s: string) => this.outgoing(s);
    switch (outcome.kind) {
      case 'accepted':
        return { ...outcome, raw: r(outcome.raw) };
      case 'rejected':
        return { ...outcome, reason: r(outcome.reason), raw: r(outcome.raw) };
      default:
        return { ...outcome, reason: r(outcome.reason) };
    }
  }
}

/** Reasons read `<category>: <detail>`; the category never quotes a body. */
function reasonCategory(reason: string): string {
  const i = reason.indexOf(': ');
  return i < 0 ? reason : reason.slice(0, i);
}

function isOk(status: number): boolean {
  return status >= 200 && status < 300;
}
