import { CsvError, parse } from 'csv-parse/sync';
import { DateTime } from 'luxon';

/**
 * Parsers of the provider's response bodies (PROVIDER.md). Each is a small, pure, replaceable
 * function of the decoded body; callers keep the raw body next to the parsed value.
 * They are strict about what counts as success (an id, a balance) and tolerant about noise around
 * it (BOM, CR/LF, surrounding whitespace), because a false "success" costs money or duplicates.
 */

export const PROVIDER_ZONE = 'Asia/Jakarta';

/** Removes a leading UTF-8 byte-order mark and surrounding whitespace (incl. CR/LF, tabs, NBSP). */
export function cleanBody(body: string): string {
  return body.replace(/^\uFEFF/, '').trim();
}

/**
 * Free text from the provider made storable: PostgreSQL refuses NUL in `text` and `jsonb`, and a lone UTF-16
 * surrogate is not a character (it becomes U+FFFD). Only for text that is kept or shown, never for ids or codes
 * (dropping a NUL there would make a different id out of garbage).
 */
export function storableText(text: string): string {
  return text.replaceAll('\u0000', '').toWellFormed();
}

function looksLikeHtml(text: string): boolean {
  return /^<(?:!doctype|html|head|body|\?xml|[a-z][a-z0-9]*[\s>/])/i.test(text);
}

/** A short, single-line excerpt of a body for reasons and logs (callers still redact it). */
export function excerpt(body: string, max = 120): string {
  const oneLine = body.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max)}…` : oneLine;
}

// ---------------------------------------------------------------------------------------------
// send.php / send_post.php

export type ParsedSendBody = { ok: true; providerMessageId: string } | { ok: false; reason: string };

/**
 * Success is a bare integer (the message id), possibly wrapped in whitespace/newlines. Everything
 * else is a failed submit (PROVIDER.md §1). Ids are kept as strings: they may exceed 2^53.
 * An all-zero body is not an id: numeric ids start at 1, and `0` is what a PHP script prints when
 * its insert did not happen (e.g. `mysql_insert_id()` after a failed insert).
 */
export function parseSendBody(body: string): ParsedSendBody {
  const text = cleanBody(body);
  if (text === '') return { ok: false, reason: 'empty body' };
  if (/^[0-9]+$/.test(text)) {
    if (/^0+$/.test(text)) return { ok: false, reason: 'zero is not a message id' };
    return { ok: true, providerMessageId: text };
  }
  if (looksLikeHtml(text)) return { ok: false, reason: `html page instead of an id: ${excerpt(text)}` };
  return { ok: false, reason: `not an id: ${excerpt(text)}` };
}

// ---------------------------------------------------------------------------------------------
// report.php

export type ParsedReportBody = { kind: 'report'; code: number; text: string } | { kind: 'none' };

/**
 * `22, Delivered`, `50,Periode Habis`, ` 20 , Pending\n`: first field the code, the rest of the first
 * line its text. Anything that does not start with digits (`Success Send`, empty, HTML) means
 * "no report yet" (PROVIDER.md §3).
 */
export function parseReportBody(body: string): ParsedReportBody {
  const firstLine = cleanBody(body).split(/\r?\n/, 1)[0]?.trim() ?? '';
  const m = /^([0-9]+)\s*(?:[,;|:]\s*)?(.*)$/.exec(firstLine);
  if (!m) return { kind: 'none' };
  const digits = m[1];
  // A code is a small number; a long digit run is not a status (and would lose precision).
  if (digits.length > 6) return { kind: 'none' };
  return { kind: 'report', code: Number(digits), text: storableText(m[2]).trim() };
}

// ---------------------------------------------------------------------------------------------
// balance.php

export type ParsedBalanceBody = { ok: true; balance: string; expiresAt: Date } | { ok: false; reason: string };

/**
 * `125000, 2027/02/25-10:00:00` or `125000.50, …`: a decimal (kept as the exact string, never a
 * float) and the expiry in Jakarta time. A thousands separator would be ambiguous with the field
 * separator, so only a dot is accepted as the decimal point.
 */
export function parseBalanceBody(body: string): ParsedBalanceBody {
  const text = cleanBody(body);
  if (text === '') return { ok: false, reason: 'empty body' };
  const m = /^(-?[0-9]+(?:\.[0-9]+)?)\s*[,;]\s*(.+)$/.exec(text);
  if (!m) return { ok: false, reason: `not a balance: ${excerpt(text)}` };
  const expiresAt = parseJakartaDateTime(m[2]);
  if (!expiresAt) return { ok: false, reason: `balance without a readable expiry: ${excerpt(text)}` };
  return { ok: true, balance: m[1], expiresAt };
}

// ---------------------------------------------------------------------------------------------
// dates

/**
 * Reads a provider date-time in Asia/Jakarta unless it carries its own offset. Accepts the balance
 * format `YYYY/MM/DD-HH:mm:ss` and the usual neighbours (`YYYY-MM-DD HH:mm:ss`, ISO with or without
 * an offset, `DD-MM-YYYY HH:mm:ss`, date only). Returns undefined when it is not a real date.
 */
export function parseJakartaDateTime(value: string): Date | undefined {
  const text = value.trim();
  if (/(?:Z|[+-][0-9]{2}:?[0-9]{2})$/.test(text) && /^[0-9]{4}-[0-9]{2}-[0-9]{2}T/.test(text)) {
    const iso = DateTime.fromISO(text, { setZone: true });
    return iso.isValid ? iso.toJSDate() : undefined;
  }
  let m = /^([0-9]{4})[/-]([0-9]{1,2})[/-]([0-9]{1,2})(?:[-T ]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?$/.exec(text);
  let parts: [string, string, string, string?, string?, string?] | undefined;
  if (m) parts = [m[1], m[2], m[3], m[4], m[5], m[6]];
  else {
    m = /^([0-9]{1,2})[/-]([0-9]{1,2})[/-]([0-9]{4})(?:[-T ]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?)?$/.exec(text);
    if (m) parts = [m[3], m[2], m[1], m[4], m[5], m[6]];
  }
  if (!parts) return undefined;
  const [year, month, day, hour, minute, second] = parts;
  const dt = DateTime.fromObject(
    {
      year: Number(year),
      month: Number(month),
      day: Number(day),
      hour: Number(hour ?? 0),
      minute: Number(minute ?? 0),
      second: Number(second ?? 0),
    },
    { zone: PROVIDER_ZONE },
  );
  return dt.isValid ? dt.toJSDate() : undefined;
}

/** `dd-mm-YYYY` of the instant's calendar day in Asia/Jakarta (the `start`/`end` of reports_post.php). */
export function formatProviderDate(date: Date): string {
  return DateTime.fromJSDate(date, { zone: PROVIDER_ZONE }).toFormat('dd-MM-yyyy');
}

// ---------------------------------------------------------------------------------------------
// CSV (reports_post.php, inbox.php)

/** Picks `,`, `;` or a tab: whichever occurs most often (outside quotes) in the first line. */
export function detectDelimiter(text: string): string {
  const counts = new Map<string, number>([
    [',', 0],
    [';', 0],
    ['\t', 0],
  ]);
  let inQuotes = false;
  for (const c of text) {
    if (c === '"') inQuotes = !inQuotes;
    else if (!inQuotes && (c === '\n' || c === '\r')) break;
    else if (!inQuotes && counts.has(c)) counts.set(c, (counts.get(c) ?? 0) + 1);
  }
  let best = ',';
  for (const [d, n] of counts) if (n > (counts.get(best) ?? 0)) best = d;
  return best;
}

/**
 * RFC 4180 records, read by csv-parse: quoted fields may hold the delimiter, `""` and line breaks;
 * CRLF, LF and lone CR line ends, mixed in one file; unquoted fields are trimmed (the provider writes
 * `22, Delivered`), quoted ones kept exactly; a quote inside an unquoted field is text (`ab"c`); a
 * record may have fewer or more fields than the header; blank lines are skipped. Quoting it cannot
 * read (a quote never closed, text after a closing quote) throws a CsvError instead of a guess: the
 * hand-written reader before it dropped such text, or read every later line into one field.
 */
export function parseCsv(input: string, delimiter = detectDelimiter(input)): string[][] {
  const records = parse(input, {
    delimiter,
    bom: true,
    trim: true,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    // Listed, not discovered: csv-parse would take the first line end it meets as the only one.
    record_delimiter: ['\r\n', '\n', '\r'],
  });
  // A line of only spaces, or only `""`, is one empty field: a blank line too.
  return records.filter((fields) => !(fields.length === 1 && fields[0] === ''));
}

export type ParsedCsvReport =
  { ok: true; header: string[]; rows: Array<Record<string, string>> } | { ok: false; reason: string };

function uniqueHeader(names: string[]): string[] {
  const seen = new Map<string, number>();
  return names.map((raw, i) => {
    const name = raw.trim() || `column_${i + 1}`;
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return n === 1 ? name : `${name}_${n}`;
  });
}

function toRecords(header: string[], records: string[][]): Array<Record<string, string>> {
  return records.map((fields) => {
    const row: Record<string, string> = {};
    header.forEach((name, i) => (row[name] = fields[i] ?? ''));
    for (let i = header.length; i < fields.length; i++) row[`column_${i + 1}`] = fields[i];
    return row;
  });
}

/** The downloaded report: CSV with a header row. An empty body is an empty report. */
export function parseCsvReport(body: string): ParsedCsvReport {
  const text = cleanBody(body);
  if (text === '') return { ok: true, header: [], rows: [] };
  if (looksLikeHtml(text)) return { ok: false, reason: `html page instead of a report: ${excerpt(text)}` };
  let parsed: string[][];
  try {
    parsed = parseCsv(text);
  } catch (e) {
    if (!(e instanceof CsvError)) throw e;
    return { ok: false, reason: `unreadable CSV report: ${e.message}` };
  }
  const [headerFields, ...records] = parsed;
  // A report has several columns; a one-field "header" is a sentence (e.g. wrong credentials).
  if ((headerFields?.length ?? 0) < 2) return { ok: false, reason: `not a CSV report: ${excerpt(text)}` };
  const header = uniqueHeader(headerFields);
  return { ok: true, header, rows: toRecords(header, records) };
}

// ---------------------------------------------------------------------------------------------
// inbox.php

export interface ParsedInboxItem {
  msisdn: string;
  text: string;
  receivedAt?: Date;
  fields: Record<string, string>;
}

export type ParsedInboxBody = { ok: true; items: ParsedInboxItem[] } | { ok: false; reason: string };

const normalizeKey = (key: string) => key.toLowerCase().replace(/[^a-z0-9]/g, '');
const MSISDN_KEYS = [
  'msisdn',
  'hp',
  'nohp',
  'from',
  'sender',
  'source',
  'originator',
  'phone',
  'number',
  'nomor',
  'pengirim',
  'mobile',
];
const TEXT_KEYS = ['text', 'message', 'msg', 'sms', 'isi', 'pesan', 'body', 'content'];
const DATE_KEYS = [
  'receivedat',
  'received',
  'datetime',
  'date',
  'time',
  'timestamp',
  'tanggal',
  'waktu',
  'createdat',
  'receivedtime',
];

function pick(fields: Record<string, string>, keys: string[]): string | undefined {
  const byKey = new Map(Object.entries(fields).map(([k, v]) => [normalizeKey(k), v]));
  for (const key of keys) if (byKey.has(key)) return byKey.get(key);
  return undefined;
}

function itemFromFields(fields: Record<string, string>): ParsedInboxItem | undefined {
  const msisdn = pick(fields, MSISDN_KEYS);
  const text = pick(fields, TEXT_KEYS);
  if (msisdn === undefined || text === undefined) return undefined;
  const date = pick(fields, DATE_KEYS);
  const receivedAt = date ? parseJakartaDateTime(date) : undefined;
  return { msisdn: msisdn.trim(), text, ...(receivedAt ? { receivedAt } : {}), fields };
}

function stringifyFields(value: Record<string, unknown>): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const [k, v] of Object.entries(value))
    fields[k] =
      v === null || v === undefined
        ? ''
        : typeof v === 'string'
          ? v
          : typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint'
            ? String(v)
            : (JSON.stringify(v) ?? '');
  return fields;
}

function parseInboxJson(text: string): ParsedInboxBody {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, reason: 'invalid JSON' };
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    const wrapped = Object.values(value as Record<string, unknown>).find(Array.isArray);
    if (!wrapped) return { ok: false, reason: 'JSON object without a message list' };
    value = wrapped;
  }
  const items: ParsedInboxItem[] = [];
  for (const [i, entry] of (value as unknown[]).entries()) {
    let item: ParsedInboxItem | undefined;
    if (Array.isArray(entry)) {
      const fields = stringifyFields(Object.fromEntries(entry.map((v, j) => [String(j), v])));
      item = lineItem(Object.values(fields), fields);
    } else if (entry && typeof entry === 'object')
      item = itemFromFields(stringifyFields(entry as Record<string, unknown>));
    if (!item) return { ok: false, reason: `JSON item ${i} has no recognisable number and text` };
    items.push(item);
  }
  return { ok: true, items };
}

const MSISDN_RE = /^\+?[0-9]{5,16}$/;

/** A headerless record: one field is the number, an optional one a date, the rest the text. */
function lineItem(values: string[], fields: Record<string, string>): ParsedInboxItem | undefined {
  const msisdnAt = values.findIndex((v) => MSISDN_RE.test(v.trim()));
  if (msisdnAt < 0) return undefined;
  let receivedAt: Date | undefined;
  const rest: string[] = [];
  values.forEach((v, i) => {
    if (i === msisdnAt) return;
    const date = receivedAt === undefined && i <= msisdnAt + 1 ? parseJakartaDateTime(v) : undefined;
    if (date) receivedAt = date;
    else rest.push(v);
  });
  return { msisdn: values[msisdnAt].trim(), text: rest.join(', '), ...(receivedAt ? { receivedAt } : {}), fields };
}

const DATE_PATTERN = String.raw`(?:[0-9]{4}[/-][0-9]{1,2}[/-][0-9]{1,2}|[0-9]{1,2}[/-][0-9]{1,2}[/-][0-9]{4})(?:[-T ][0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?)?`;

function unquote(text: string): string {
  const t = text.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1).replace(/""/g, '"') : text;
}

/**
 * One headerless line: `msisdn<sep>text`, `msisdn<sep>date<sep>text` or `date<sep>msisdn<sep>text`.
 * Only the leading fields are split off, so the text keeps its own delimiters.
 */
function inboxLine(line: string, delimiter: string): ParsedInboxItem | undefined {
  const sep = `\\s*${delimiter === '|' ? '\\|' : delimiter}\\s*`;
  const number = String.raw`(\+?[0-9]{5,16})`;
  const shapes: Array<[RegExp, (m: RegExpExecArray) => [string, string | undefined, string]]> = [
    [new RegExp(`^\\s*${number}${sep}(${DATE_PATTERN})${sep}([\\s\\S]*)$`), (m) => [m[1], m[2], m[3]]],
    [new RegExp(`^\\s*(${DATE_PATTERN})${sep}${number}${sep}([\\s\\S]*)$`), (m) => [m[2], m[1], m[3]]],
    [new RegExp(`^\\s*${number}${sep}([\\s\\S]*)$`), (m) => [m[1], undefined, m[2]]],
  ];
  for (const [re, read] of shapes) {
    const m = re.exec(line);
    if (!m) continue;
    const [msisdn, date, text] = read(m);
    const receivedAt = date ? parseJakartaDateTime(date) : undefined;
    if (date && !receivedAt) continue;
    const fields: Record<string, string> = { msisdn, text: unquote(text), ...(date ? { receivedAt: date } : {}) };
    return { msisdn, text: fields.text, ...(receivedAt ? { receivedAt } : {}), fields };
  }
  return undefined;
}

/**
 * The inbox format is undocumented (PROVIDER.md §6). Accepted shapes: a JSON array (of objects, or of
 * arrays, or wrapped in an object), CSV with a header naming a number and a text column, or one
 * message per line (`msisdn,text` or `msisdn,date,text`, any of `,;|` or tab). A body with any
 * line it cannot read is an error rather than a silently shorter list: the caller keeps the raw body.
 */
export function parseInboxBody(body: string): ParsedInboxBody {
  const text = cleanBody(body);
  if (text === '') return { ok: true, items: [] };
  if (text.startsWith('[') || text.startsWith('{')) return parseInboxJson(text);
  if (looksLikeHtml(text)) return { ok: false, reason: `html page instead of an inbox: ${excerpt(text)}` };

  const firstLine = text.split(/\r?\n/, 1)[0];
  const delimiter = firstLine.includes('|') && !/[,;\t]/.test(firstLine) ? '|' : detectDelimiter(text);
  let records: string[][] = [];
  try {
    records = parseCsv(text, delimiter);
  } catch (e) {
    if (!(e instanceof CsvError)) throw e; // not CSV with a header: read line by line below
  }
  const header = (records[0] ?? []).map(normalizeKey);
  const isHeader = header.some((h) => MSISDN_KEYS.includes(h)) && header.some((h) => TEXT_KEYS.includes(h));
  if (isHeader) {
    const names = uniqueHeader(records[0]);
    const items: ParsedInboxItem[] = [];
    for (const [i, row] of toRecords(names, records.slice(1)).entries()) {
      const item = itemFromFields(row);
      if (!item) return { ok: false, reason: `inbox row ${i + 1} has no number and text` };
      items.push(item);
    }
    return { ok: true, items };
  }
  // The delimiter is guessed from the first line, whose text may hold more `;` or tabs than the line has
  // separators (a keyword SMS `REG;NAME;CITY;AGE`): that guess then read no line at all, and the inbox failed on
  // every poll. A line is read with the guess first (as before: the same fields, the same dedupe key), else with
  // the first other delimiter that reads it (only the one right after its leading number or date can).
  const delimiters = [delimiter, ...[',', ';', '\t', '|'].filter((d) => d !== delimiter)];
  const items: ParsedInboxItem[] = [];
  for (const [i, line] of text.split(/\r?\n/).entries()) {
    if (line.trim() === '') continue;
    let item: ParsedInboxItem | undefined;
    for (const d of delimiters) if ((item = inboxLine(line, d))) break;
    if (!item) return { ok: false, reason: `inbox line ${i + 1} has no number: ${excerpt(line, 60)}` };
    items.push(item);
  }
  return { ok: true, items };
}
