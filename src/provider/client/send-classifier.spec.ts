import type { Exchange } from './http-exchange';
import { classifySendExchange } from './send-classifier';

const response = (status: number, body: string): Exchange => ({
  type: 'response',
  status,
  headers: {},
  body,
  durationMs: 1,
});
const failure = (code: string, written: boolean): Exchange => ({
  type: 'failure',
  code,
  written,
  message: 'boom',
  durationMs: 1,
});

describe('classifySendExchange', () => {
  it.each([
    ['2xx bare id', response(200, '18319370\n'), 'accepted'],
    ['201 bare id', response(201, '42'), 'accepted'],
    ['2xx html', response(200, '<html>oops</html>'), 'rejected'],
    ['2xx empty', response(200, ''), 'rejected'],
    ['2xx free text', response(200, 'Username atau Password salah'), 'rejected'],
    ['2xx zero', response(200, '0'), 'rejected'],
    ['3xx redirect', response(301, ''), 'rejected'],
    ['404', response(404, 'Not Found'), 'rejected'],
    ['429', response(429, ''), 'rejected'],
    ['500', response(500, 'Internal Server Error'), 'uncertain'],
    ['502 from a proxy', response(502, '<html>Bad Gateway</html>'), 'uncertain'],
    ['503', response(503, ''), 'uncertain'],
    ['504 with a number in the body', response(504, '504'), 'uncertain'],
    ['refused (never written)', failure('ECONNREFUSED', false), 'notSent'],
    ['DNS (never written)', failure('ENOTFOUND', false), 'notSent'],
    ['connect timeout', failure('UND_ERR_CONNECT_TIMEOUT', false), 'notSent'],
    ['TLS failure', failure('ERR_SSL_WRONG_VERSION_NUMBER', false), 'notSent'],
    ['total timeout while queued', failure('TOTAL_TIMEOUT', false), 'notSent'],
    ['reset during TLS handshake (before write)', failure('ECONNRESET', false), 'notSent'],
    ['total timeout after write', failure('TOTAL_TIMEOUT', true), 'uncertain'],
    ['reset after write', failure('ECONNRESET', true), 'uncertain'],
    ['closed by the other side after write', failure('UND_ERR_SOCKET', true), 'uncertain'],
    ['body too large after write', failure('RESPONSE_TOO_LARGE', true), 'uncertain'],
  ])('%s → %s', (_name, exchange, kind) => {
    expect(classifySendExchange(exchange).kind).toBe(kind);
  });

  it('keeps the id, the raw body and the HTTP status', () => {
    expect(classifySendExchange(response(200, ' 18319370\r\n'))).toEqual({
      kind: 'accepted',
      providerMessageId: '18319370',
      raw: ' 18319370\r\n',
    });
    expect(classifySendExchange(response(403, 'Forbidden'))).toMatchObject({
      kind: 'rejected',
      httpStatus: 403,
      raw: 'Forbidden',
    });
  });

  it('says in the reason whether the request was written', () => {
    expect(classifySendExchange(failure('ECONNREFUSED', false))).toMatchObject({
      reason: expect.stringMatching(/connection refused before the request was written/),
    });
    expect(classifySendExchange(failure('TOTAL_TIMEOUT', true))).toMatchObject({
      reason: expect.stringMatching(/total timeout after the request was written/),
    });
  });
});
