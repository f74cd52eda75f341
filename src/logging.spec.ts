import { redactUrl } from './logging';

describe('redactUrl', () => {
  const token = 'lK0ju-kpk-wsScXztF7xG9D5R62qWaNH';

  // The provider calls the URL it was given; a careless copy (a doubled slash, upper case, an encoded letter)
  // misses the route (404, logged at info) or reaches it, and either way its line must not carry the token.
  it.each([
    `/v1/dlr/${token}?session_id=1&error_code=22`,
    `/v1/dlr/${token}/`,
    `/v1/dlr/${token}/extra`,
    `//v1/dlr/${token}`,
    `/v1//dlr/${token}`,
    `/v1/dlr//${token}`,
    `/V1/DLR/${token}`,
    `/v1/%64lr/${token}`,
    `/v1/dl%72/${token}?x=1`,
  ])('masks the DLR token in %s', (url) => {
    const out = redactUrl(url)!;
    expect(out).not.toContain(token);
    expect(out).toContain('[redacted]');
    expect(out).not.toContain('?');
  });

  it('keeps other paths and drops every query', () => {
    expect(redactUrl('/v1/messages/msg_1?x=secret')).toBe('/v1/messages/msg_1');
    expect(redactUrl('/v1/admin/provider-accounts/pac_1/report')).toBe('/v1/admin/provider-accounts/pac_1/report');
    expect(redactUrl(undefined)).toBeUndefined();
  });
});
