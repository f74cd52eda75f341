import { toPublicId } from '../common/ids';

/** A messages row as selected by MESSAGE_COLUMNS. */
export interface MessageRow {
  id: string;
  tenant_id: string;
  msisdn: string;
  text: string;
  reference: string | null;
  status: string;
  segments: number;
  encoding: 'GSM-7' | 'UCS-2';
  price: string | number;
  provider_message_id: string | null;
  provider_status_code: number | null;
  failure_reason: string | null;
  refunded: boolean;
  send_at: Date | null;
  created_at: Date;
  submitted_at: Date | null;
  finalized_at: Date | null;
}

export const MESSAGE_COLUMNS = `id, tenant_id, msisdn, text, reference, status, segments, encoding, price, provider_message_id,
  provider_status_code, failure_reason, refunded, send_at, created_at, submitted_at, finalized_at`;

export type PublicStatus =
  'scheduled' | 'queued' | 'submitted' | 'pending' | 'delivered' | 'failed' | 'canceled' | 'expired';

/**
 * Two internal dispatch states are not part of the API: `submitting` (claimed by a worker) is
 * still `queued` to the tenant, and `uncertain` (the provider may have it, we have no id) is
 * `submitted`: it is out of our hands and will be settled by reports.
 */
export function publicStatus(status: string): PublicStatus {
  if (status === 'submitting') return 'queued';
  if (status === 'uncertain') return 'submitted';
  return status as PublicStatus;
}

export class MessageDto {
  /** `msg_…` */
  id: string;
  /** Normalised to `62…` digits. */
  to: string;
  text: string;
  reference: string | null;
  status: PublicStatus;
  segments: number;
  encoding: 'GSM-7' | 'UCS-2';
  /** segments × the tenant's price per segment, charged at acceptance. */
  price: number;
  providerMessageId: string | null;
  /** The provider's last delivery code (20, 22, 50, 51, 52). */
  providerStatusCode: number | null;
  /** For `failed`: invalid_number, provider_balance_empty, provider_validity_expired, submit_rejected, submit_failed. */
  failureReason: string | null;
  /** True once the price has been refunded (failures 50/51/52, submit failures, cancellation). */
  refunded: boolean;
  sendAt: Date | null;
  createdAt: Date;
  submittedAt: Date | null;
  finalizedAt: Date | null;
}

export function messageDto(r: MessageRow): MessageDto {
  return {
    id: toPublicId('message', r.id),
    to: r.msisdn,
    text: r.text,
    reference: r.reference,
    status: publicStatus(r.status),
    segments: r.segments,
    encoding: r.encoding,
    price: Number(r.price),
    providerMessageId: r.provider_message_id,
    providerStatusCode: r.provider_status_code,
    failureReason: r.failure_reason,
    refunded: r.refunded,
    sendAt: r.send_at,
    createdAt: r.created_at,
    submittedAt: r.submitted_at,
    finalizedAt: r.finalized_at,
  };
}
