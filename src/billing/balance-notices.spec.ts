import { expiringNoticeDue, expiringNoticeEventId } from './balance-notices';

const validUntil = new Date('2031-06-29T20:00:00Z');
const before = (ms: number) => new Date(validUntil.getTime() - ms);
const DAY = 86_400_000;

describe('expiringNoticeDue', () => {
  it.each([
    ['more than 7 days before', before(7 * DAY + 1), null],
    ['exactly 7 days before', before(7 * DAY), 7],
    ['between 7 days and 1 day before', before(3 * DAY), 7],
    ['1 ms before the 1-day point', before(DAY + 1), 7],
    ['exactly 1 day before', before(DAY), 1],
    ['1 ms before validUntil', before(1), 1],
    ['at validUntil (grace)', validUntil, null],
    ['after validUntil', new Date(validUntil.getTime() + DAY), null],
  ])('%s', (_name, now, days) => {
    const due = expiringNoticeDue(now, validUntil);
    expect(due?.days ?? null).toBe(days);
    if (due) expect(due.at).toEqual(before(due.days * DAY));
  });

  it('no validity (credit from adjustments only): no notice', () => {
    expect(expiringNoticeDue(new Date(), null)).toBeNull();
  });
});

describe('expiringNoticeEventId', () => {
  const tenant = '0190a0b0-0000-7000-8000-000000000001';
  it('is a uuid, the same for the same tenant, period and notice, different otherwise', () => {
    const id = expiringNoticeEventId(tenant, validUntil, 7);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(expiringNoticeEventId(tenant, validUntil, 7)).toBe(id);
    expect(expiringNoticeEventId(tenant, validUntil, 1)).not.toBe(id);
    expect(expiringNoticeEventId(tenant, new Date(validUntil.getTime() + 1), 7)).not.toBe(id);
    expect(expiringNoticeEventId('0190a0b0-0000-7000-8000-000000000002', validUntil, 7)).not.toBe(id);
  });
});
