/**
 * The upstream provider as the rest of Gerbang sees it: one client per provider account
 * (one provider "user id"), one method per operation of the provider's HTTP API
 * (../shared/provider/PROVIDER.md). The HTTP adapter (`HttpProviderClient`) and the sandbox
 * provider satisfy the same contract tests (test/provider/).
 */

export interface ProviderAccountConfig {
  /** Our id of the provider account; the only account identifier that may appear in logs and metrics. */
  accountId: string;
  /** e.g. `https://sms.mysmsmasking.com/masking` (no trailing slash needed, no query, no credentials). */
  baseUrl: string;
  username: string;
  /** Decrypted. Never logged, never in an error, a metric label or a returned value. */
  password: string;
  /** `post` (default, `send_post.php`) keeps credentials and text out of URLs; `get` uses `send.php`. */
  sendMethod: 'post' | 'get';
}

/**
 * What became of one submit. The class decides money and duplicates, so it is exact:
 * - `accepted`: the provider answered 2xx with a bare integer: its message id.
 * - `rejected`: the provider answered (2xx without an id, 3xx, 4xx): nothing was sent. Not charged upstream.
 * - `notSent`: the request provably never reached the provider (refused, DNS, connect timeout, TLS,
 *   timed out while still queued locally): nothing was written to a socket. Safe to retry.
 * - `uncertain`: the request was written but no complete answer came back (timeout, reset after write,
 *   HTTP 5xx). The provider may have sent it: NEVER resend blindly; reconcile (report/download) first.
 * - `unavailable`: held locally (circuit open, in-flight or rate limit saturated, client closed):
 *   nothing was sent and it is not an attempt. Retry after `retryAfterMs`.
 */
export type SendOutcome =
  | { kind: 'accepted'; providerMessageId: string; raw: string }
  | { kind: 'rejected'; reason: string; raw: string; httpStatus?: number }
  | { kind: 'notSent'; reason: string }
  | { kind: 'uncertain'; reason: string }
  | { kind: 'unavailable'; reason: string; retryAfterMs: number };

export type SendOutcomeKind = SendOutcome['kind'];

/**
 * `report.php?rpt=<id>`.
 * - `report`: the body started with a status code (`22, Delivered`). In the poll answer the provider folds
 *   51 and 52 under 50 with a text; `code` is the number as written, `resolvedCode` the code the text
 *   means (see dlr-codes.ts `resolvePolledCode`).
 * - `none`: no status yet (`Success Send`, empty, or anything not starting with digits).
 * - `error`: the provider answered with a non-2xx status.
 * Transport failures throw `ProviderError`.
 */
export type ReportResult =
  | { kind: 'report'; code: number; resolvedCode: number; text: string; raw: string }
  | { kind: 'none'; raw: string }
  | { kind: 'error'; reason: string; raw: string; httpStatus?: number };

/**
 * `balance.php`. `balance` is a decimal string exactly as the provider wrote it (never a float);
 * `expiresAt` is the provider's `YYYY/MM/DD-HH:mm:ss` read in Asia/Jakarta time.
 * `error`: non-2xx, or a body that is not `<decimal>, <date>` (e.g. a wrong-credentials sentence).
 */
export type BalanceResult =
  | { kind: 'balance'; balance: string; expiresAt: Date; raw: string }
  | { kind: 'error'; reason: string; raw: string; httpStatus?: number };

/** `reports_post.php`: CSV with a header row, each row a record keyed by the header. */
export type DownloadReportResult =
  | { kind: 'report'; header: string[]; rows: Array<Record<string, string>>; raw: string }
  | { kind: 'error'; reason: string; raw: string; httpStatus?: number };

export interface InboxItem {
  msisdn: string;
  text: string;
  receivedAt?: Date;
  /** Every field of the item as the provider named it (the format is undocumented). */
  fields: Record<string, string>;
}

/** `inbox.php` (undocumented format: CSV with header, JSON array or one message per line). */
export type InboxResult =
  | { kind: 'inbox'; items: InboxItem[]; raw: string }
  | { kind: 'error'; reason: string; raw: string; httpStatus?: number };

export interface ProviderClient {
  readonly accountId: string;
  /** Never throws: every failure is one of the outcome classes. */
  send(msisdn: string, text: string): Promise<SendOutcome>;
  report(providerMessageId: string): Promise<ReportResult>;
  balance(): Promise<BalanceResult>;
  /** Dates are sent as `dd-mm-YYYY` in Asia/Jakarta; both days inclusive. */
  downloadReport(start: Date, end: Date): Promise<DownloadReportResult>;
  inbox(): Promise<InboxResult>;
  /** Lets requests in flight finish, then releases the connections. Later sends return `unavailable`. */
  close(): Promise<void>;
}
