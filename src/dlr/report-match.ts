/* Pure rules of the report loop: reading the provider's report download, matching, comparing, poll backoff. */
import { parseJakartaDateTime, storableText } from '../provider/client';
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
  /** SMS the provider counted (and charged) for it, when the row says. */
  smsCount?: number;
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
    const smsCount = pick(row, ['sms_count', 'smscount', 'parts', 'jumlah_sms'])?.trim();
    // Kept as the provider wrote them, minus what PostgreSQL cannot store (they go into delivery_reports and
    // into the kept summary's jsonb): one such row failed the whole reconciliation before.
    out.push({
      providerMessageId: id,
      msisdn: storableText(msisdn),
      text: storableText(text),
      sentAt: when ? parseJakartaDateTime(when) : undefined,
      ...(statusCode !== undefined ? { statusCode } : {}),
      ...(statusText !== undefined ? { statusText: storableText(statusText) } : {}),
      ...(smsCount && /^\d{1,6}$/.test(smsCount) ? { smsCount: Number(smsCount) } : {}),
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

/** A final provider code as a report row writes it (22, 50, 51, 52), else undefined (20, empty, unknown). */
export function finalCode(raw: string | undefined): number | undefined {
  const code = Number(raw?.trim());
  return [22, 50, 51, 52].includes(code) ? code : undefined;
}

/** What a message of ours says about a provider id (messaging's `MessageFollowUpService.reportFacts`). */
export interface MessageFacts {
  id: string;
  status: string;
  segments: number;
}

/** A provider id the report lists and no message of ours carries: what the row says (never its text). */
export interface UnknownSend {
  providerMessageId: string;
  msisdn: string;
  sentAt: Date | null;
  providerStatusCode: number | null;
}
/** Both final, and they disagree: our status and the provider's (22 → delivered, 50–52 → failed). */
export interface StatusDifference {
  messageId: string;
  providerMessageId: string;
  ours: string;
  theirs: 'delivered' | 'failed';
  providerStatusCode: number;
}
/** The provider counted more SMS (`sms_count`) than the segments we charged. */
export interface MoreParts {
  messageId: string;
  providerMessageId: string;
  segments: number;
  smsCount: number;
}
/** Our message, submitted in the range, that the provider's report does not list. */
export interface MissingSend {
  messageId: string;
  providerMessageId: string;
}
export interface ReportMismatches {
  unknown: UnknownSend[];
  statusDiffers: StatusDifference[];
  moreParts: MoreParts[];
  missing: MissingSend[];
}

/** Our message submitted in a reconciled range (messaging's `submittedBetween`). */
export interface SubmittedSend {
  id: string;
  providerMessageId: string;
  submittedAt: Date;
}

/**
 * Our sends of the range [`from`, `to`) that its report does not list (`listed`: the provider ids it does) and
 * that were submitted within MATCH_SLACK_MS of one of its edges: the provider files a send by its own clock (a
 * few minutes off ours) and date, so such a send may be in the adjacent day's file, and is `missing` only if that
 * file does not list it either. `before`: to look for in the day before the range; `after`: the day after.
 */
export function unlistedNearEdges(
  submitted: SubmittedSend[],
  listed: Set<string>,
  from: Date,
  to: Date,
): { before: SubmittedSend[]; after: SubmittedSend[] } {
  const unlisted = submitted.filter((m) => !listed.has(m.providerMessageId));
  return {
    before: unlisted.filter((m) => m.submittedAt.getTime() < from.getTime() + MATCH_SLACK_MS),
    after: unlisted.filter((m) => m.submittedAt.getTime() >= to.getTime() - MATCH_SLACK_MS),
  };
}

/** Final message statuses (API.md): a later report changes none of them, except a 22 on `expired`. */
const FINAL_STATUSES = new Set(['delivered', 'failed', 'expired', 'canceled']);

/**
 * Compares the provider's report (one row per id) with our messages: `facts` of the ids it lists (after
 * the missing final codes were applied), and our messages `submitted` in the same range.
 */
export function compareReport(
  sends: ReportedSend[],
  facts: Map<string, MessageFacts>,
  submitted: { id: string; providerMessageId: string }[],
): ReportMismatches {
  const found: ReportMismatches = { unknown: [], statusDiffers: [], moreParts: [], missing: [] };
  for (const send of sends) {
    const pid = send.providerMessageId;
    const ours = facts.get(pid);
    if (!ours) {
      const raw = send.statusCode?.trim();
      found.unknown.push({
        providerMessageId: pid,
        msisdn: send.msisdn,
        sentAt: send.sentAt ?? null,
        providerStatusCode: raw && /^\d{1,4}$/.test(raw) ? Number(raw) : null,
      });
      continue;
    }
    const code = finalCode(send.statusCode);
    if (code !== undefined && FINAL_STATUSES.has(ours.status)) {
      const theirs = code === 22 ? 'delivered' : 'failed';
      if (ours.status !== theirs)
        found.statusDiffers.push({
          messageId: ours.id,
          providerMessageId: pid,
          ours: ours.status,
          theirs,
          providerStatusCode: code,
        });
    }
    if (send.smsCount !== undefined && send.smsCount > ours.segments)
      found.moreParts.push({
        messageId: ours.id,
        providerMessageId: pid,
        segments: ours.segments,
        smsCount: send.smsCount,
      });
  }
  const listed = new Set(sends.map((s) => s.providerMessageId));
  for (const m of submitted)
    if (!listed.has(m.providerMessageId))
      found.missing.push({ messageId: m.id, providerMessageId: m.providerMessageId });
  return found;
}

/** Longest wait between two polls of one message. */
export const MAX_POLL_GAP_MS = 6 * 3_600_000;

/** pollAfter × 2^polls (10 min, 20, 40 … for the default), capped at 6 h, ±20 % jitter. */
export function nextPollDelayMs(pollAfterMs: number, pollsMade: number, random = Math.random): number {
  const base = Math.min(MAX_POLL_GAP_MS, pollAfterMs * 2 ** Math.min(pollsMade, 30));
  return Math.round(base * (0.8 + random() * 0.4));
}
