import { toPublicId } from '../common/ids';
import type { MessageDto, PublicStatus } from './message.dto';

// The DTO moved to message.dto.ts (the Swagger plugin reads only `*.dto.ts`); re-exported for existing imports.
export { MessageDto } from './message.dto';
export type { PublicStatus } from './message.dto';

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
