/**
 * RFC 4180 CSV: CRLF line ends; a field is quoted when it holds a comma, a quote, CR or LF, and
 * quotes inside are doubled. A field starting with = + - @ (a spreadsheet formula) is prefixed with
 * a single quote so that opening a statement in a spreadsheet never runs a formula; numbers are
 * written as they are (negative amounts stay numbers).
 */
export function csvField(value: string | number | boolean | null | undefined | Date): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  let s = value instanceof Date ? value.toISOString() : value;
  if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function csvLine(fields: (string | number | boolean | null | undefined | Date)[]): string {
  return fields.map(csvField).join(',') + '\r\n';
}

/** True when the client asked for CSV (`Accept: text/csv`, by itself or preferred over JSON). */
export function wantsCsv(accept: string | undefined): boolean {
  if (!accept) return false;
  let csv = -1;
  let json = -1;
  for (const part of accept.split(',')) {
    const [type, ...params] = part.trim().toLowerCase().split(';');
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (type === 'text/csv') csv = Math.max(csv, q);
    if (type === 'application/json') json = Math.max(json, q);
  }
  return csv > 0 && csv >= json;
}
