import { balanceState, validityAfterTopup } from './validity';

const d = (s: string) => new Date(s);

describe('validityAfterTopup (calendar months in Asia/Jakarta)', () => {
  it.each([
    // now (UTC)                 current validUntil        expected validUntil        expected graceUntil
    ['2026-01-10T03:00:00Z', null, '2026-04-10T03:00:00.000Z', '2026-05-10T03:00:00.000Z'],
    // 2026-11-30 23:00 Jakarta = 16:00Z; +3 months -> 2027-02-28 23:00 Jakarta (clamped), +1 -> 2027-03-28
    ['2026-11-30T16:00:00Z', null, '2027-02-28T16:00:00.000Z', '2027-03-28T16:00:00.000Z'],
    // 31 Aug 2026 20:00Z is 1 Sep 03:00 in Jakarta: months count from the Jakarta date
    ['2026-08-31T20:00:00Z', null, '2026-11-30T20:00:00.000Z', '2026-12-31T20:00:00.000Z'],
    // an existing longer validity is never shortened
    ['2026-01-10T03:00:00Z', '2026-06-01T00:00:00Z', '2026-06-01T00:00:00.000Z', '2026-07-01T00:00:00.000Z'],
    // a shorter one is extended to now + 3 months, never beyond
    ['2026-01-10T03:00:00Z', '2026-02-01T00:00:00Z', '2026-04-10T03:00:00.000Z', '2026-05-10T03:00:00.000Z'],
    // a lapsed one (in grace) restarts from now
    ['2026-05-20T00:00:00Z', '2026-04-10T03:00:00Z', '2026-08-20T00:00:00.000Z', '2026-09-20T00:00:00.000Z'],
  ])('now %s, validUntil %s', (now, current, valid, grace) => {
    const r = validityAfterTopup(d(now), current ? d(current) : null);
    expect(r.validUntil.toISOString()).toBe(valid);
    expect(r.graceUntil.toISOString()).toBe(grace);
  });
});

describe('balanceState', () => {
  const valid = d('2026-04-10T00:00:00Z');
  const grace = d('2026-05-10T00:00:00Z');
  it.each([
    ['2026-03-01T00:00:00Z', 100, 'active'],
    ['2026-04-09T23:59:59Z', 100, 'active'],
    ['2026-04-10T00:00:00Z', 100, 'grace'],
    ['2026-05-09T23:59:59Z', 100, 'grace'],
    ['2026-05-10T00:00:00Z', 100, 'expired'],
    ['2026-03-01T00:00:00Z', 0, 'empty'],
    ['2026-04-20T00:00:00Z', 0, 'empty'],
    ['2026-06-01T00:00:00Z', 0, 'expired'],
  ])('at %s with balance %d is %s', (now, balance, state) => {
    expect(balanceState(d(now), balance, valid, grace)).toBe(state);
  });
  it('is empty without any top-up, and active for credit without validity (adjustments)', () => {
    expect(balanceState(d('2026-01-01T00:00:00Z'), 0, null, null)).toBe('empty');
    expect(balanceState(d('2026-01-01T00:00:00Z'), 10, null, null)).toBe('active');
  });
});
