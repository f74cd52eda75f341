import { createHash } from 'node:crypto';
import type { InboxItem } from '../provider/client';

/**
 * The dedupe key of each row of one inbox.php answer; `inbound_messages` is unique on
 * (provider_account_id, dedupe_key), so a row seen on several polls is stored once.
 *
 * inbox.php's format is undocumented and it carries no documented message id, so the key is built
 * from the row itself: SHA-256 over the row's fields exactly as the provider named and wrote them
 * (keys sorted, so field order does not matter), including a provider row id or timestamp when
 * the body has one. Identical rows within one answer (the same text from the same number in the
 * same second, and no id) are told apart by their occurrence: `v1:<hex>:1`, `v1:<hex>:2`, ...
 *
 * Known limits, both from the missing id: if the provider rewrote a field of an old row between
 * polls (say, a "read" flag) it would be stored again; and if of two identical rows the first left
 * the inbox before the second was read, the second would count as the first (stored once, not twice).
 */
export function inboxDedupeKeys(items: readonly Pick<InboxItem, 'fields'>[]): string[] {
  const seen = new Map<string, number>();
  return items.map((item) => {
    const digest = createHash('sha256').update(canonicalFields(item.fields)).digest('hex');
    const occurrence = (seen.get(digest) ?? 0) + 1;
    seen.set(digest, occurrence);
    return `v1:${digest}:${occurrence}`;
  });
}

/** JSON of the fields with keys in code-unit order: one string per row content, whatever the key order. */
function canonicalFields(fields: Record<string, string>): string {
  const keys = Object.keys(fields).sort();
  return JSON.stringify(keys.map((k) => [k, fields[k]]));
}
