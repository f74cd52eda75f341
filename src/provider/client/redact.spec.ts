import { REDACTED, SecretRedactor } from './redact';

describe('SecretRedactor', () => {
  const password = 'p@ss w0rd&=+/ü';
  const redactor = new SecretRedactor([password]);

  it.each([
    ['as written', `password: ${password}!`],
    ['percent-encoded', `GET /send.php?password=${encodeURIComponent(password)}&hp=1`],
    [
      'lower-case percent-encoded',
      `x=${encodeURIComponent(password).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase())}`,
    ],
    ['form-encoded', new URLSearchParams({ username: 'u', password }).toString()],
    ['several times', `${password} and ${password}`],
  ])('masks the secret %s', (_name, text) => {
    const out = redactor.redact(text);
    expect(out).toContain(REDACTED);
    expect(out).not.toContain(password);
    expect(out).not.toContain(encodeURIComponent(password));
    expect(out).not.toContain(new URLSearchParams({ s: password }).toString().slice(2));
  });

  it('leaves other text alone and ignores an empty secret', () => {
    expect(redactor.redact('nothing secret')).toBe('nothing secret');
    expect(new SecretRedactor(['']).redact('abc')).toBe('abc');
  });
});
