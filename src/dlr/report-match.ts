/* Pure rules of the report loop: reading the provider's report download, matching, poll backoff. */
import { parseJakartaDateTime } from '../provider/client';
import { reportNumber } from '../messaging/message-reports.service';

/** One send as the provider's report download lists it. */
export interface ReportedSend {
  providerMessageId: string;
  msisdn: string;
  text: string;
  sentAt: Date | undefined;
  /** The provider's status code and text, when the row has them. */
  statusCode?: string;
  statusText?: string;
}

/** What is looked for: an uncertain submit, sent between its creation and when it became uncertain. */
export interface SubmitToFind {
  msisdn: string;
  text: string;
  createdAt: Date;
  uncertainAt: Date;
}

/** Clock skew allowed between the provider's times and ours, either side of the attempt window. */
export const MATCH_SLACK_MS = 5 * 60_000;

const pick = (row: Record<string, string>, names: string[]): string | undefined => {
  for (const [key, value] of Object.entries(row)) {
    if (names.includes(key.trim().toLowerCase())) return value;
  }
  return undefined;
};

/**
 * Reads reports_post.php rows (CSV with a header; the column names are undocumented, so the usual
 * neighbours are accepted). Rows without an id, a number or a text are left out.
 */
export function reportedSends(rows: Array<Record<string, string>>): ReportedSend[] {
  const out: ReportedSend[] = [];
  for (const row of rows) {
    const id = pick(row, ['id', 'session_id', 'message_id', 'msgid', 'sms_id'])?.trim();
    const msisdn = pick(row, ['msisdn', 'hp', 'number', 'phone', 'to', 'destination']);
    const text = pick(row, ['message', 'text', 'msg', 'sms']);
    const when = pick(row, ['sent_at', 'date', 'time', 'datetime', 'created_at', 'send_date', 'tanggal']);
    if (!id || !/^\d{1,32}$/.test(id) || msisdn === undefined || text === undefined) continue;
    const statusCode = pick(row, ['status_code', 'error_code', 'code']);
    const statusText = pick(row, ['status', 'error_message', 'keterangan']);
    out.push({
      providerMessageId: id,
      msisdn,
      text,
      sentAt: when ? parseJakartaDateTime(when) : undefined,
      ...(statusCode !== undefined ? { statusCode } : {}),
      ...(statusText !== undefined ? { statusText } : {}),
    });
  }
  return out;
}

/**
 * The report row that is this submit: same number (normalised), same text, sent within the attempt
 * window (creation − slack … uncertain + slack; a row without a readable time is not taken), and not
 * already the provider id of another message (`taken`). Of several, the earliest.
 */
export function findSubmit(sends: ReportedSend[], want: SubmitToFind, taken: Set<string>): ReportedSend | undefined {
  const from = want.createdAt.getTime() - MATCH_SLACK_MS;
  const to = want.uncertainAt.getTime() + MATCH_SLACK_MS;
  return sends
    .filter(
      (s) =>
        !taken.has(s.providerMessageId) &&
        s.text === want.text &&
        reportNumber(s.msisdn) === want.msisdn &&
        s.sentAt !== undefined &&
        s.sentAt.getTime() >= from &&
        s.sentAt.getTime() <= to,
    )
    .sort((a, b) => a.sentAt!.getTime() - b.sentAt!.getTime())[0];
}

/** Longest wait between two polls of one message. */
export const MAX_POLL_GAP_MS = 6 * 3_600_000;

/** pollAfter × 2^polls (10 min, 20, 40 … for the default), capped at 6 h, ±20 % jitter. */
export function nextPollDelayMs(pollAfterMs: number, pollsMade: number, random = Math.random): number {
  const base = Math.min(MAX_POLL_GAP_MS, pollAfterMs * 2 ** Math.min(pollsMade, 30));
  return Math.round(base * (0.8 + random() * 0.4));
}
