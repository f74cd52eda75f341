/** The messages table as raw SQL reads it: the selected columns and the row they give. */

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
