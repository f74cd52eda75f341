import { describeDlrCode, resolvePolledCode } from './dlr-codes';

describe('DLR codes', () => {
  it.each([
    [22, 'delivered', true, true],
    [20, 'pending', false, true],
    [50, 'provider_balance_empty', true, false],
    [51, 'provider_validity_expired', true, false],
    [52, 'invalid_number', true, false],
  ])('%i is %s (final %p, charged %p)', (code, status, final, charged) => {
    expect(describeDlrCode(code)).toMatchObject({ code, status, final, chargedByProvider: charged });
  });

  it('does not know undocumented codes (nor inherited object keys)', () => {
    expect(describeDlrCode(99)).toBeUndefined();
    expect(describeDlrCode(Number('constructor'))).toBeUndefined();
  });

  it.each([
    [50, 'Saldo Habis', 50],
    [50, 'Insufficient Credit Balance', 50],
    [50, 'Periode Habis', 51],
    [50, 'Expiration Period', 51],
    [50, 'No Charge', 52],
    [50, '', 50],
    [22, 'Periode Habis', 22],
    [51, 'Expiration Period', 51],
  ])('poll code %i with %p means %i', (code, text, resolved) => {
    expect(resolvePolledCode(code, text)).toBe(resolved);
  });
});
