/** The Message of API.md, as the API returns it. The row → DTO mapping lives in message.view.ts. */

export const PUBLIC_STATUSES = [
  'scheduled',
  'queued',
  'submitted',
  'pending',
  'delivered',
  'failed',
  'canceled',
  'expired',
] as const;
export type PublicStatus = (typeof PUBLIC_STATUSES)[number];

export class MessageDto {
  /**
   * `msg_…`
   * @example "msg_0f6b3c1e9a2d4b7c8e5f1a2b3c4d5e6f"
   */
  id: string;
  /**
   * Normalised to `62…` digits.
   * @example "6281234567890"
   */
  to: string;
  /** @example "Kode OTP Anda 123456" */
  text: string;
  /** @example "order-1234" */
  reference: string | null;
  /**
   * `scheduled` → `queued` → `submitted` → `pending` → `delivered`, or `failed`, `canceled`, `expired`.
   * @example "queued"
   */
  status: 'scheduled' | 'queued' | 'submitted' | 'pending' | 'delivered' | 'failed' | 'canceled' | 'expired';
  /** @example 1 */
  segments: number;
  /** @example "GSM-7" */
  encoding: 'GSM-7' | 'UCS-2';
  /**
   * segments × the tenant's price per segment, charged at acceptance.
   * @example 350
   */
  price: number;
  providerMessageId: string | null;
  /** The provider's last delivery code (20, 22, 50, 51, 52). */
  providerStatusCode: number | null;
  /** For `failed`: invalid_number, provider_balance_empty, provider_validity_expired, submit_rejected, submit_failed. */
  failureReason: string | null;
  /** True once the price has been refunded (failures 50/51/52, submit failures, cancellation). */
  refunded: boolean;
  /** When a scheduled message is due (UTC). */
  sendAt: Date | null;
  createdAt: Date;
  submittedAt: Date | null;
  finalizedAt: Date | null;
}

/** A page of messages, newest first. */
export class MessagePageDto {
  data: MessageDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}
