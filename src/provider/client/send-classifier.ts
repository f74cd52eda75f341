import type { Exchange } from './http-exchange';
import type { SendOutcome } from './provider-client';
import { excerpt, parseSendBody } from './parsers';

const TRANSPORT_LABELS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'DNS lookup failed',
  EAI_AGAIN: 'DNS lookup failed (temporary)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connect timeout',
  ECONNRESET: 'connection reset',
  EPIPE: 'broken pipe',
  UND_ERR_SOCKET: 'connection closed by the other side',
  UND_ERR_HEADERS_TIMEOUT: 'no response headers in time',
  UND_ERR_BODY_TIMEOUT: 'response body stalled',
  UND_ERR_CLOSED: 'client closed',
  UND_ERR_DESTROYED: 'client destroyed',
  TOTAL_TIMEOUT: 'total timeout',
  RESPONSE_TOO_LARGE: 'response too large',
};

function isTlsCode(code: string): boolean {
  return /^(ERR_TLS|ERR_SSL|EPROTO$)|CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code);
}

/** A human reason for a transport failure (the caller redacts it before it leaves the client). */
export function describeTransportFailure(failure: Extract<Exchange, { type: 'failure' }>): string {
  const label =
    TRANSPORT_LABELS[failure.code] ?? (isTlsCode(failure.code) ? 'TLS handshake failed' : 'transport error');
  const when = failure.written ? 'after the request was written' : 'before the request was written';
  return `${label} ${when} (${failure.code}): ${failure.message}`;
}

/**
 * The send classification (docs/provider.md "Outcome classes"). Pure; `written` comes from
 * performExchange, which knows whether undici started writing the request.
 *
 * HTTP 5xx is `uncertain`, not `rejected`: the provider is a PHP application behind web servers and
 * possibly proxies. A 500 can come from a script that failed after queueing the SMS, a 502/504 from a
 * proxy whose upstream is still working on it. Calling it `rejected` would let a retry send the SMS
 * twice (and pay twice); `uncertain` sends it to reconciliation (report.php / reports_post.php).
 * No documented 5xx body proves "not sent", so the body does not change that.
 */
export function classifySendExchange(exchange: Exchange): SendOutcome {
  if (exchange.type === 'failure') {
    const reason = describeTransportFailure(exchange);
    return exchange.written ? { kind: 'uncertain', reason } : { kind: 'notSent', reason };
  }
  const { status, body } = exchange;
  if (status >= 500) {
    return {
      kind: 'uncertain',
      reason: `HTTP ${status} from the provider side; the message may have been sent: ${excerpt(body)}`,
    };
  }
  if (status >= 200 && status < 300) {
    const parsed = parseSendBody(body);
    if (parsed.ok) return { kind: 'accepted', providerMessageId: parsed.providerMessageId, raw: body };
    return { kind: 'rejected', reason: parsed.reason, raw: body, httpStatus: status };
  }
  // 1xx (never final in practice), 3xx (undici does not follow redirects: usually a wrong baseUrl,
  // e.g. http→https) and 4xx: the request was refused before the application took it.
  return { kind: 'rejected', reason: `HTTP ${status}: ${excerpt(body) || 'no body'}`, raw: body, httpStatus: status };
}
