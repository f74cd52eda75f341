import { Counter, register } from 'prom-client';

function counter(name: string, help: string, labelNames: string[] = []): Counter<string> {
  return (register.getSingleMetric(name) as Counter<string> | undefined) ?? new Counter({ name, help, labelNames });
}

/** inbox.php reads by outcome: `polled` (an inbox was read, possibly empty) or `failed`. */
export const inboxPolls = counter('gerbang_inbound_polls_total', 'inbox.php reads by outcome', ['outcome']);
export const inboundStored = counter('gerbang_inbound_stored_total', 'Inbound SMS stored (first seen)');
export const inboundDuplicates = counter(
  'gerbang_inbound_duplicates_total',
  'Inbox rows read again after they were stored (not stored twice)',
);
export const inboundUnrouted = counter('gerbang_inbound_unrouted_total', 'Inbound SMS stored without a tenant');
