import { createHash } from 'node:crypto';

const DAY_MS = 86_400_000;

/** The `balance.expiring` notices: days before `validUntil` (API.md "Webhook events", docs/billing.md "Notices"). */
export const EXPIRING_NOTICE_DAYS = [7, 1] as const;
export type ExpiringNoticeDays = (typeof EXPIRING_NOTICE_DAYS)[number];

export interface ExpiringNotice {
  days: ExpiringNoticeDays;
  /** validUntil − days: from this moment on the notice is due. */
  at: Date;
}

/**
 * The `balance.expiring` notice due at `now` for a validity ending at `validUntil`: the latest notice point
 * already reached, or null before the first (7 days) and from `validUntil` on (the balance is then in grace,
 * and sends are refused with `balance_expired`). A job that was down at the 7-day point and runs again
 * inside the last day sends only the 1-day notice: one notice per point reached, never two at once.
 */
export function expiringNoticeDue(now: Date, validUntil: Date | null): ExpiringNotice | null {
  if (!validUntil || now >= validUntil) return null;
  for (const days of [...EXPIRING_NOTICE_DAYS].sort((a, b) => a - b)) {
    const at = new Date(validUntil.getTime() - days * DAY_MS);
    if (now >= at) return { days, at };
  }
  return null;
}

/**
 * The event id of one notice of one validity period (a uuid derived from tenant, validUntil and the notice),
 * so the same notice enqueued twice is one delivery (webhook_deliveries is unique per tenant and event id).
 */
export function expiringNoticeEventId(tenantId: string, validUntil: Date, days: ExpiringNoticeDays): string {
  const h = createHash('sha256')
    .update(`balance.expiring|${tenantId}|${validUntil.toISOString()}|${days}`)
    .digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
