import { csvLine, wantsCsv } from './csv';
import { jakartaDayRange, jakartaDayStart, jakartaMonthRange, jakartaPeriod, nextMonth } from './billing-calendar';
import { validityAfterTopup } from './validity';

describe('billing calendar (Asia/Jakarta, UTC+7)', () => {
  it.each([
    // instant (UTC)             day            month
    ['2031-11-30T16:59:59.999Z', '2031-11-30', '2031-11'],
    ['2031-11-30T17:00:00.000Z', '2031-12-01', '2031-12'], // 17:00 UTC is midnight in Jakarta
    ['2031-12-31T17:00:00.000Z', '2032-01-01', '2032-01'], // new year in Jakarta, still 31 Dec in UTC
    ['2032-02-28T17:00:00.000Z', '2032-02-29', '2032-02'], // leap day
    ['2032-02-29T17:00:00.000Z', '2032-03-01', '2032-03'],
    ['2031-02-28T17:00:00.000Z', '2031-03-01', '2031-03'], // no 29 Feb in 2031
  ])('%s is Jakarta day %s, month %s', (iso, day, month) => {
    expect(jakartaPeriod(new Date(iso), 'day')).toBe(day);
    expect(jakartaPeriod(new Date(iso), 'month')).toBe(month);
  });

  it.each([
    ['2031-11', '2031-10-31T17:00:00.000Z', '2031-11-30T17:00:00.000Z'],
    ['2032-02', '2032-01-31T17:00:00.000Z', '2032-02-29T17:00:00.000Z'], // leap February: 29 days
    ['2031-02', '2031-01-31T17:00:00.000Z', '2031-02-28T17:00:00.000Z'],
    ['2100-02', '2100-01-31T17:00:00.000Z', '2100-02-28T17:00:00.000Z'], // 2100 is not a leap year
    ['2000-02', '2000-01-31T17:00:00.000Z', '2000-02-29T17:00:00.000Z'], // 2000 is
    ['2031-12', '2031-11-30T17:00:00.000Z', '2031-12-31T17:00:00.000Z'],
  ])('month %s is [%s, %s)', (month, start, end) => {
    const r = jakartaMonthRange(month)!;
    expect([r.start.toISOString(), r.end.toISOString()]).toEqual([start, end]);
  });

  it.each(['2031-13', '2031-00', '2031-1', '31-11', '2031-11-01', '', 'abcd-ef'])('month %p is refused', (m) => {
    expect(jakartaMonthRange(m)).toBeNull();
  });

  it.each(['2031-02-29', '2100-02-29', '2031-04-31', '2031-13-01', '2031-1-01', '2031-01-00'])(
    'day %p is not a calendar date',
    (d) => expect(jakartaDayStart(d)).toBeNull(),
  );

  it('a day range is inclusive of `to` and starts/ends at 17:00 UTC', () => {
    const r = jakartaDayRange('2032-02-28', '2032-02-29')!;
    expect([r.start.toISOString(), r.end.toISOString()]).toEqual([
      '2032-02-27T17:00:00.000Z',
      '2032-02-29T17:00:00.000Z',
    ]);
    expect(jakartaDayStart('2000-02-29')!.toISOString()).toBe('2000-02-28T17:00:00.000Z');
  });

  it('the month after December is January; chains through a leap February', () => {
    const chain = ['2031-11'];
    for (let i = 0; i < 4; i++) chain.push(nextMonth(chain[chain.length - 1]));
    expect(chain).toEqual(['2031-11', '2031-12', '2032-01', '2032-02', '2032-03']);
    // consecutive months tile time: one's end is the next one's start
    for (let i = 0; i + 1 < chain.length; i++)
      expect(jakartaMonthRange(chain[i])!.end).toEqual(jakartaMonthRange(chain[i + 1])!.start);
  });

  it('30 Nov + 3 months is the end of February (29 in a leap year), and grace one month later', () => {
    // 30 Nov 2031 10:00 Jakarta
    const leap = validityAfterTopup(new Date('2031-11-30T03:00:00Z'), null);
    expect(jakartaPeriod(leap.validUntil, 'day')).toBe('2032-02-29');
    expect(jakartaPeriod(leap.graceUntil, 'day')).toBe('2032-03-29');
    const common = validityAfterTopup(new Date('2030-11-30T03:00:00Z'), null);
    expect(jakartaPeriod(common.validUntil, 'day')).toBe('2031-02-28');
    expect(jakartaPeriod(common.graceUntil, 'day')).toBe('2031-03-28');
    // at 17:00 UTC on 30 Nov it is already 1 Dec in Jakarta: + 3 months = 1 Mar
    const late = validityAfterTopup(new Date('2031-11-30T17:00:00Z'), null);
    expect(jakartaPeriod(late.validUntil, 'day')).toBe('2032-03-01');
    expect(late.validUntil.toISOString()).toBe('2032-02-29T17:00:00.000Z');
  });
});

describe('CSV (RFC 4180)', () => {
  it.each([
    [['a', 1, -5, null], 'a,1,-5,\r\n'],
    [['with,comma', 'with "quote"', 'line\nbreak'], '"with,comma","with ""quote""","line\nbreak"\r\n'],
    [['=SUM(A1)', '+1', '@x', '-cmd'], "'=SUM(A1),'+1,'@x,'-cmd\r\n"],
    [[new Date('2031-11-30T17:00:00Z')], '2031-11-30T17:00:00.000Z\r\n'],
  ])('%j → %j', (fields, line) => {
    expect(csvLine(fields as (string | number | null | Date)[])).toBe(line);
  });

  it.each([
    ['text/csv', true],
    ['text/csv; charset=utf-8', true],
    ['application/json, text/csv;q=0.5', false],
    ['text/csv, application/json;q=0.9', true],
    ['*/*', false],
    [undefined, false],
    ['application/json', false],
  ])('Accept %p wants CSV: %p', (accept, csv) => {
    expect(wantsCsv(accept)).toBe(csv);
  });
});
