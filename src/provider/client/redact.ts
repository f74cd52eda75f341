/**
 * Masks a secret (the provider password) in any text that leaves the client: reasons, raw bodies,
 * error messages, log lines. A provider error page, a proxy page or a transport error may echo the
 * request, and a GET send carries the password in its query string, so every encoding a request
 * can carry is masked: as written, percent-encoded (both hex cases) and form-encoded (`+` for space).
 */
export const REDACTED = '[REDACTED]';

export class SecretRedactor {
  private readonly variants: string[];

  constructor(secrets: ReadonlyArray<string>) {
    const variants = new Set<string>();
    for (const secret of secrets) {
      if (!secret) continue;
      const percent = encodeURIComponent(secret);
      const form = new URLSearchParams({ s: secret }).toString().slice(2);
      for (const v of [
        secret,
        percent,
        percent.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
        form,
        form.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
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
