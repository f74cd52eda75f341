/**
 * How a provider delivery code moves a message (API.md "Message"). Pure, so it is table-tested.
 * Final states never change back, except that a late 22 turns `expired` into `delivered`.
 * Returns null when the report changes nothing (duplicate, out of order, unknown code).
 */
export type Transition =
  | { status: 'delivered'; final: true }
  | { status: 'pending'; final: false }
  | { status: 'failed'; final: true; failureReason: string; refund: true };

const FAILURES: Record<number, string> = {
  50: 'provider_balance_empty',
  51: 'provider_validity_expired',
  52: 'invalid_number',
};

export function transitionFor(current: string, code: number): Transition | null {
  const open = current === 'submitted' || current === 'pending' || current === 'uncertain';
  if (code === 22) return open || current === 'expired' ? { status: 'delivered', final: true } : null;
  if (code === 20)
    return current === 'submitted' || current === 'uncertain' ? { status: 'pending', final: false } : null;
  const reason = FAILURES[code];
  if (reason && open) return { status: 'failed', final: true, failureReason: reason, refund: true };
  return null;
}
