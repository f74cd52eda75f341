import { findSubmit, MAX_POLL_GAP_MS, nextPollDelayMs, reportedSends } from './report-match';

describe('reports_post.php rows', () => {
  it('reads the sandbox columns and the usual neighbours, leaving out rows without id, number or text', () => {
    expect(
      reportedSends([
        { id: '101', msisdn: '6281200000001', message: 'halo', sent_at: '2026-11-30 10:00:05' },
        { session_id: '102', HP: '081200000002', Text: 'x', date: '30-11-2026 10:00:06' },
        { id: 'abc', msisdn: '6281', message: 'no numeric id' },
        { id: '103', message: 'no number' },
      ]),
    ).toEqual([
      {
        providerMessageId: '101',
        msisdn: '6281200000001',
        text: 'halo',
        sentAt: new Date('2026-11-30T03:00:05Z'),
      },
      { providerMessageId: '102', msisdn: '081200000002', text: 'x', sentAt: new Date('2026-11-30T03:00:06Z') },
    ]);
  });

  const want = {
    msisdn: '6281200000001',
    text: 'halo',
    createdAt: new Date('2026-11-30T03:00:00Z'),
    uncertainAt: new Date('2026-11-30T03:00:30Z'),
  };
  const send = (id: string, at: string, over: object = {}) => ({
    providerMessageId: id,
    msisdn: '081200000001',
    text: 'halo',
    sentAt: new Date(at),
    ...over,
  });

  it('matches number (normalised), text and time within the attempt window; the earliest untaken one', () => {
    const sends = [
      send('1', '2026-11-30T02:50:00Z'), // before creation − 5 min
      send('2', '2026-11-30T03:00:20Z', { text: 'halo!' }),
      send('3', '2026-11-30T03:00:25Z', { msisdn: '6281200000009' }),
      send('4', '2026-11-30T03:00:12Z'),
      send('5', '2026-11-30T03:00:10Z'),
      send('6', '2026-11-30T03:06:00Z'), // after uncertain + 5 min
    ];
    expect(findSubmit(sends, want, new Set())?.providerMessageId).toBe('5');
    expect(findSubmit(sends, want, new Set(['5']))?.providerMessageId).toBe('4');
    expect(findSubmit(sends, want, new Set(['4', '5']))).toBeUndefined();
    expect(findSubmit([send('7', '2026-11-30T03:00:10Z', { sentAt: undefined })], want, new Set())).toBeUndefined();
  });
});

describe('poll backoff', () => {
  it('doubles from DLR_POLL_AFTER_SECONDS, capped at 6 h, with ±20 % jitter', () => {
    const base = 600_000;
    expect(nextPollDelayMs(base, 1, () => 0.5)).toBe(1_200_000);
    expect(nextPollDelayMs(base, 2, () => 0.5)).toBe(2_400_000);
    expect(nextPollDelayMs(base, 1, () => 0)).toBe(960_000);
    expect(nextPollDelayMs(base, 1, () => 0.999999)).toBeLessThanOrEqual(1_440_000);
    expect(nextPollDelayMs(base, 10, () => 0.5)).toBe(MAX_POLL_GAP_MS);
    expect(nextPollDelayMs(base, 100, () => 1)).toBe(MAX_POLL_GAP_MS * 1.2);
  });
});
