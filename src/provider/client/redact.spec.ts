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

  // A PHP page (a warning with html_errors, a debug dump, a proxy page) shows a value HTML-escaped
  // (htmlspecialchars: & < > " ' as entities); a JSON error body escapes quotes, backslashes and slashes.
  it.each([
    ['HTML-escaped (&amp;)', `<pre>["password"]=> "${password.replace(/&/g, '&amp;')}"</pre>`, password],
    ...[`pw"<k>'\\x/`].flatMap((secret) => [
      [
        'HTML-escaped with named entities',
        `<b>${secret.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#039;')}</b>`,
        secret,
      ],
      [
        'HTML-escaped with &#39;',
        `<b>${secret.replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;')}</b>`,
        secret,
      ],
      ['JSON-escaped', JSON.stringify({ error: `wrong password ${secret}` }), secret],
      ['JSON-escaped with \\/', JSON.stringify({ error: secret }).replace(/\//g, '\\/'), secret],
    ]),
  ])('masks the secret %s', (_name, text, secret) => {
    const out = new SecretRedactor([secret]).redact(text);
    expect(out).toContain(REDACTED);
    expect(out).not.toMatch(/pw|w0rd/);
  });

  it('leaves other text alone and ignores an empty secret', () => {
    expect(redactor.redact('nothing secret')).toBe('nothing secret');
    expect(new SecretRedactor(['']).redact('abc')).toBe('abc');
  });
});
