/**
 * The provider's delivery status codes (PROVIDER.md §3), as carried by `report.php` and the DLR
 * callback's `error_code` (the name says error, but 22 is success).
 *
 * `final`: no later report can change the outcome (20 may still become 22; a late 20 after a 22 is
 * stale and must not undo the 22). `chargedByProvider`: the provider takes the price of the message
 * from the provider account; the uncharged codes are failures the tenant must not pay for either.
 */
export type DlrStatus =
  'delivered' | 'pending' | 'provider_balance_empty' | 'provider_validity_expired' | 'invalid_number';

export interface DlrCodeInfo {
  code: number;
  status: DlrStatus;
  final: boolean;
  chargedByProvider: boolean;
  /** The provider's own wording (callback `error_message` / poll text). */
  providerText: string;
}

export const DLR_CODES: Readonly<Record<number, DlrCodeInfo>> = Object.freeze({
  22: { code: 22, status: 'delivered', final: true, chargedByProvider: true, providerText: 'Delivered' },
  20: { code: 20, status: 'pending', final: false, chargedByProvider: true, providerText: 'Pending' },
  50: {
    code: 50,
    status: 'provider_balance_empty',
    final: true,
    chargedByProvider: false,
    providerText: 'Insufficient Credit Balance',
  },
  51: {
    code: 51,
    status: 'provider_validity_expired',
    final: true,
    chargedByProvider: false,
    providerText: 'Expiration Period',
  },
  52: { code: 52, status: 'invalid_number', final: true, chargedByProvider: false, providerText: 'No Charge' },
});

/** undefined for a code the provider has not documented: keep the raw report and treat it as unknown. */
export function describeDlrCode(code: number): DlrCodeInfo | undefined {
  return Object.prototype.hasOwnProperty.call(DLR_CODES, code) ? DLR_CODES[code] : undefined;
}

/**
 * The poll answer folds 51 and 52 under 50 with a text (`50, Periode Habis`, `50, No Charge`); the
 * callback separates them. Returns the code the text means; any other code is returned unchanged.
 */
export function resolvePolledCode(code: number, text: string): number {
  if (code !== 50) return code;
  if (/periode|expir/i.test(text)) return 51;
  if (/no\s*charge|format/i.test(text)) return 52;
  return 50;
}
