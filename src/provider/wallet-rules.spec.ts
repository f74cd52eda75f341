import { assessWallet, decimalBelow, decimalIsEmpty, EXPIRY_WARNING_MS } from './wallet-rules';

const NOW = new Date('2026-11-30T00:00:00Z');
const inDays = (d: number) => new Date(NOW.getTime() + d * 86_400_000);

describe('decimalBelow / decimalIsEmpty', () => {
  it.each([
    ['0', 1, true, true],
    ['0.00', 0, false, true],
    ['0.50', 1, true, false],
    ['999.99', 1000, true, false],
    ['1000', 1000, false, false],
    ['1000.01', 1000, false, false],
    ['-5', 0, true, true],
    ['-0.0', 0, false, true],
    ['90071992547409930', 9007199254740991, false, false],
  ])('%s < %d is %p, empty is %p', (balance, threshold, below, empty) => {
    expect(decimalBelow(balance, threshold)).toBe(below);
    expect(decimalIsEmpty(balance)).toBe(empty);
  });

  it('refuses what is not a decimal', () => {
    expect(() => decimalBelow('1e5', 1)).toThrow(RangeError);
    expect(() => decimalIsEmpty('')).toThrow(RangeError);
  });
});

describe('assessWallet', () => {
  it.each([
    ['healthy', '125000', inDays(60), 1000, [], null],
    ['below the threshold', '999.50', inDays(60), 1000, ['low_balance'], null],
    ['threshold 0 never alerts low', '1', inDays(60), 0, [], null],
    ['empty', '0', inDays(60), 1000, ['empty'], 'empty'],
    ['negative is empty', '-10', inDays(60), 0, ['empty'], 'empty'],
    ['expiring within 14 days', '125000', inDays(13.9), 0, ['expiring'], null],
    ['exactly 14 days left', '125000', new Date(NOW.getTime() + EXPIRY_WARNING_MS), 0, ['expiring'], null],
    ['just over 14 days left', '125000', new Date(NOW.getTime() + EXPIRY_WARNING_MS + 1000), 0, [], null],
    ['expired (balance kept)', '125000', inDays(-1), 0, ['expired'], 'expired'],
    ['expiry now', '125000', NOW, 0, ['expired'], 'expired'],
    ['empty and expired: empty first', '0', inDays(-1), 0, ['empty', 'expired'], 'empty'],
    ['low and expiring', '10', inDays(2), 100, ['low_balance', 'expiring'], null],
  ])('%s', (_name, balance, expiresAt, threshold, reasons, hold) => {
    expect(assessWallet({ balance, expiresAt }, threshold, NOW)).toEqual({ reasons, hold });
  });
});
