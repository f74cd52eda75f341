/** A messages row as the API shows it: the public status and the Message DTO. */

import { toPublicId } from '../common/ids';
import type { MessageDto, PublicStatus } from './message.dto';
import type { MessageRow } from './message.row';

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
