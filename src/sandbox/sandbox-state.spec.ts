import {
  formatBalanceExpiry,
  formatMoney,
  graceUntil,
  parseMoney,
  providerSmsCount,
  SandboxLedger,
} from './sandbox-state';

describe('sandbox money', () => {
  it.each([
    ['125000', 12500000n, '125000'],
    ['125000.5', 12500050n, '125000.50'],
    ['125000.50', 12500050n, '125000.50'],
    ['0.05', 5n, '0.05'],
    ['0', 0n, '0'],
    [350, 35000n, '350'],
    ['123456789012345678901', 12345678901234567890100n, '123456789012345678901'],
  ])('%p', (input, cents, text) => {
    expect(parseMoney(input)).toBe(cents);
    expect(formatMoney(cents)).toBe(text);
  });
  it.each(['', 'abc', '1.234', '1,5', '1e5'])('refuses %p', (input) => {
    expect(() => parseMoney(input)).toThrow(RangeError);
  });
});

describe("the provider's SMS count (160 characters each)", () => {
  it.each([
    ['', 1],
    ['a', 1],
    ['a'.repeat(160), 1],
    ['a'.repeat(161), 2],
    ['a'.repeat(320), 2],
    ['a'.repeat(321), 3],
    ['😀'.repeat(160), 1], // code points, not UTF-16 units
  ])('%#', (text, count) => {
    expect(providerSmsCount(text)).toBe(count);
  });
});

describe('SandboxLedger', () => {
  const now = new Date('2026-01-10T03:00:00.000Z');
  const setup = (balance = '1000', expiresAt?: Date) => {
    const ledger = new SandboxLedger(100);
    const account = ledger.upsertAccount({ username: 'u', password: 'p', balance, expiresAt, pricePerSms: '300' }, now);
    return { ledger, account };
  };

  it('defaults validity to 3 months (Jakarta calendar) and grace to 1 month more', () => {
    const { account } = setup();
    expect(formatBalanceExpiry(account.validUntil)).toBe('2026/04/10-10:00:00');
    expect(formatBalanceExpiry(graceUntil(account))).toBe('2026/05/10-10:00:00');
  });

  it('issues increasing numeric ids and charges price × provider SMS count', () => {
    const { ledger, account } = setup('1000');
    const a = ledger.submit(account, '6281234567890', 'a'.repeat(161), now);
    const b = ledger.submit(account, '6281234567890', 'hi', now);
    expect([a.id, b.id]).toEqual(['100', '101']);
    expect([a.charged, a.smsCount, a.codes]).toEqual(['600', 2, [22]]);
    expect(formatMoney(account.balanceCents)).toBe('100');
    // 100 left, 300 needed: 50, not charged
    const c = ledger.submit(account, '6281234567890', 'hi', now);
    expect([c.codes, c.charged, formatMoney(account.balanceCents)]).toEqual([[50], '0', '100']);
  });

  it('counts and charges extra SMS on top of its rule when told (the smsOvercountRate knob)', () => {
    const { ledger, account } = setup('1000');
    const m = ledger.submit(account, '6281234567890', 'hi', now, 1);
    expect([m.smsCount, m.charged, formatMoney(account.balanceCents)]).toEqual([2, '600', '400']);
  });

  it.each([
    ['6289912345678', [52], '0'],
    ['abc', [52], '0'],
    ['62', [52], '0'],
    ['6289812345678', [20, 22], '300'],
    ['6289712345678', [20], '300'],
    ['081234567890', [22], '300'],
  ])('number %s → codes %p, charged %s', (msisdn, codes, charged) => {
    const { ledger, account } = setup();
    const m = ledger.submit(account, msisdn, 'x', now);
    expect(m.codes).toEqual(codes);
    expect(m.charged).toBe(charged);
  });

  it('lapsed validity gives 51 and charges nothing; grace keeps the balance, a top-up revives it', () => {
    const { ledger, account } = setup('1000', new Date('2026-01-01T00:00:00.000Z'));
    const m = ledger.submit(account, '6281234567890', 'x', now);
    expect([m.codes, m.charged]).toEqual([[51], '0']);
    expect(ledger.view(account, now).balance).toBe('1000'); // in grace: kept
    ledger.topUp('u', '500', now);
    expect(ledger.view(account, now).balance).toBe('1500');
    expect(ledger.submit(account, '6281234567890', 'x', now).codes).toEqual([22]);
  });

  it('forfeits the balance after the grace month; a top-up then starts from zero', () => {
    const { ledger, account } = setup('1000', new Date('2025-11-01T00:00:00.000Z')); // grace ended 2025-12-01
    expect(ledger.view(account, now).balance).toBe('0');
    ledger.topUp('u', '500', now);
    expect(ledger.view(account, now).balance).toBe('500');
  });

  it('a top-up never shortens validity', () => {
    const later = new Date('2026-12-01T00:00:00.000Z');
    const { ledger, account } = setup('1000', later);
    ledger.topUp('u', '1', now);
    expect(account.validUntil).toEqual(later);
  });

  it('authenticates without telling which half was wrong', () => {
    const { ledger } = setup();
    expect(ledger.authenticate('u', 'p')?.username).toBe('u');
    expect(ledger.authenticate('u', 'x')).toBeUndefined();
    expect(ledger.authenticate('x', 'p')).toBeUndefined();
    expect(ledger.authenticate(undefined, 'p')).toBeUndefined();
  });

  it('selects report rows by Jakarta calendar day, inclusive', () => {
    const { ledger, account } = setup('100000');
    ledger.submit(account, '6281234567890', 'a', new Date('2026-01-09T16:59:59.000Z')); // 09-01 23:59:59 WIB
    ledger.submit(account, '6281234567890', 'b', new Date('2026-01-09T17:00:00.000Z')); // 10-01 00:00:00 WIB
    ledger.submit(account, '6281234567890', 'c', new Date('2026-01-11T16:59:59.000Z')); // 11-01 23:59:59 WIB
    expect(ledger.messagesBetween('u', '10-01-2026', '11-01-2026')?.map((m) => m.text)).toEqual(['b', 'c']);
    expect(ledger.messagesBetween('u', '2026-01-10', '11-01-2026')).toBeUndefined();
  });
});
