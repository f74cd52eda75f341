/**
 * What other modules may use of messaging besides its services, DTOs and entities (the module
 * boundary rule, docs/decisions.md "Lint"). Keep it to what they need:
 * - the number rule, so an inbound sender is stored the way messages store recipients (dlr);
 * - the Message row shape and its one mapping to the public DTO, so a `message.status` webhook
 *   carries the same Message the API returns (webhooks' relay reads message rows read-only).
 */
export { normalizeMsisdn } from './domain/msisdn';
export type { MsisdnResult } from './domain/msisdn';
export { MESSAGE_COLUMNS } from './message.row';
export type { MessageRow } from './message.row';
export { messageDto, publicStatus } from './message.view';
