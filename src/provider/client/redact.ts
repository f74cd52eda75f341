/**
 * Masks a secret (the provider password) in any text that leaves the client: reasons, raw bodies,
 * error messages, log lines. A provider error page, a proxy page or a transport error may echo the
 * request, and a GET send carries the password in its query string, so every encoding a request
 * can carry is masked: as written, percent-encoded (both hex cases) and form-encoded (`+` for space);
 * and so is every way a page shows it: HTML-escaped (a PHP warning or debug dump) and JSON-escaped.
 */
export const REDACTED = '[REDACTED]';

/**
 * A value as an HTML page shows it: PHP's htmlspecialchars (`&#039;` for a quote, or `&#39;` as other
 * escapers write it), with and without quotes escaped (ENT_NOQUOTES).
 */
function htmlEscaped(secret: string): string[] {
  const base = secret.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
  const quoted = base.replaceAll('"', '&quot;');
  return [base, quoted.replaceAll("'", '&#039;'), quoted.replaceAll("'", '&#39;'), quoted];
}

export class SecretRedactor {
  private readonly variants: string[];

  constructor(secrets: ReadonlyArray<string>) {
    const variants = new Set<string>();
    for (const secret of secrets) {
      if (!secret) continue;
      const percent = encodeURIComponent(secret);
      const form = new URLSearchParams({ s: secret }).toString().slice(2);
      const json = JSON.stringify(secret).slice(1, -1);
      for (const v of [
        secret,
        percent,
        percent.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
        form,
        form.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
        ...htmlEscaped(secret),
        json,
        json.replaceAll('/', '\\/'),
      ]) {
        variants.add(v);
      }
    }
    // Longest first, so a variant that contains another is masked whole.
    this.variants = [...variants].sort((a, b) => b.length - a.length);
  }

  redact(text: string): string {
    let out = text;
    for (const v of this.variants) {
      if (out.includes(v)) out = out.split(v).join(REDACTED);
    }
    return out;
  }
}
