import { ChargePolicy, ChargeableTenant, messagePrice } from './charge-policy';

const now = new Date('2031-05-01T00:00:00Z');
const later = new Date('2031-06-01T00:00:00Z');
const active: ChargeableTenant = { status: 'active', state: 'active', validUntil: later };

describe('messagePrice', () => {
  it.each([
    [1, 350, 350],
    [3, 350, 1050],
    [0, 350, 0],
    [2, 0, 0],
  ])('%i segments at %i = %i', (segments, pricePerSegment, price) => {
    expect(messagePrice(segments, pricePerSegment)).toBe(price);
  });
});

describe('ChargePolicy.refusal', () => {
  it.each<[string, ChargeableTenant, number, number, string | null]>([
    ['active, covered', active, 1000, 350, null],
    ['active, exactly covered', active, 350, 350, null],
    ['active, one short', active, 349, 350, 'insufficient_balance'],
    ['active, price out of range', active, 1000, 2 ** 53, 'validation_failed'],
    [
      'suspended (before anything else)',
      { ...active, status: 'suspended', state: 'grace' },
      0,
      350,
      'tenant_suspended',
    ],
    ['in grace, balance kept', { ...active, state: 'grace', validUntil: now }, 1000, 350, 'balance_expired'],
    ['grace ended', { ...active, state: 'expired' }, 0, 350, 'balance_expired'],
    ['validUntil reached (state read before it)', { ...active, validUntil: now }, 1000, 350, 'balance_expired'],
    ['no validity (adjustment credit only)', { ...active, validUntil: null }, 1000, 350, null],
    ['empty', { ...active, state: 'empty' }, 0, 350, 'insufficient_balance'],
  ])('%s', (_name, tenant, balance, price, code) => {
    expect(new ChargePolicy(tenant, now).refusal(balance, price)?.code ?? null).toBe(code);
  });
});
