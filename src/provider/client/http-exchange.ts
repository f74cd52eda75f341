import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * One HTTP exchange with the provider that knows whether the request was written.
 *
 * The invariant the send classification rests on: undici calls a handler's `onRequestStart` (its
 * legacy `onConnect`) synchronously right before it writes the request to an already connected (and,
 * for https, TLS-established) socket (client-h1 `writeH1`). So:
 * - a failure before `onRequestStart` (refused, DNS, connect timeout, TLS, still queued in the pool
 *   when the total timeout fires, pool closed) means not a byte of the request left this process;
 * - any failure after it means the provider may have received the request.
 * The pool must not pipeline (pipelining 1): undici re-writes pipelined requests that were behind a
 * failed one, which for a send would be a duplicate.
 */
export interface ExchangeRequest {
  method: 'GET' | 'POST';
  /** Path and query; for a GET send it carries credentials, so it never leaves this module in an error. */
  path: string;
  body?: string;
  headers: Record<string, string>;
}

export interface ExchangeLimits {
  /** From dispatch to the last body byte, including time queued for a connection. */
  totalTimeoutMs: number;
  maxBodyBytes: number;
}

export type Exchange =
  | { type: 'response'; status: number; headers: IncomingHttpHeaders; body: string; durationMs: number }
  | {
      type: 'failure';
      /** true once the request started to be written: the provider may have received it. */
      written: boolean;
      /** errno / undici code, or TOTAL_TIMEOUT, RESPONSE_TOO_LARGE. */
      code: string;
      message: string;
      durationMs: number;
    };

function decode(body: Buffer, contentType: string | string[] | undefined): string {
  const charset = /charset\s*=\s*"?([\w-]+)/i.exec(String(contentType ?? ''))?.[1];
  if (charset) {
    try {
      return new TextDecoder(charset).decode(body);
    } catch {
      // unknown label: fall through to UTF-8
    }
  }
  return new TextDecoder('utf-8').decode(body);
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code ? code : 'UNKNOWN';
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function performExchange(
  dispatcher: Dispatcher,
  request: ExchangeRequest,
  limits: ExchangeLimits,
): Promise<Exchange> {
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);

  return new Promise<Exchange>((resolve) => {
    let written = false;
    let settled = false;
    let controller: Dispatcher.DispatchController | undefined;
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let size = 0;

    const settle = (result: Exchange) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const fail = (code: string, message: string) =>
      settle({ type: 'failure', written, code, message, durationMs: elapsed() });

    const timer = setTimeout(() => {
      // Before the write this settles as "not written"; the request may still sit in the pool queue,
      // and onRequestStart below aborts it before undici writes a byte.
      fail('TOTAL_TIMEOUT', `no complete answer within ${limits.totalTimeoutMs} ms`);
      controller?.abort(new Error('total timeout'));
    }, limits.totalTimeoutMs);

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(ctrl) {
        controller = ctrl;
        if (settled) {
          ctrl.abort(new Error('abandoned before it was written'));
          return;
        }
        written = true;
      },
      onResponseStart(_ctrl, statusCode, responseHeaders) {
        status = statusCode;
        headers = responseHeaders;
      },
      onResponseData(ctrl, chunk) {
        size += chunk.length;
        if (size > limits.maxBodyBytes) {
          fail('RESPONSE_TOO_LARGE', `response body over ${limits.maxBodyBytes} bytes`);
          ctrl.abort(new Error('response too large'));
          return;
        }
        chunks.push(chunk);
      },
      onResponseEnd() {
        settle({
          type: 'response',
          status,
          headers,
          body: decode(Buffer.concat(chunks), headers['content-type']),
          durationMs: elapsed(),
        });
      },
      onResponseError(_ctrl, err) {
        fail(errorCode(err), errorMessage(err));
      },
    };

    try {
      dispatcher.dispatch(
        { method: request.method, path: request.path, body: request.body, headers: request.headers, idempotent: false },
        handler,
      );
    } catch (err) {
      fail(errorCode(err), errorMessage(err));
    }
  });
}
