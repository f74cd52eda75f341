import {
  compareReport,
  findSubmit,
  MAX_POLL_GAP_MS,
  MessageFacts,
  nextPollDelayMs,
  reportedSends,
  unlistedNearEdges,
} from './report-match';

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

  it('drops NUL and lone surrogates from what it keeps (number, text, status text): they could not be stored', () => {
    expect(
      reportedSends([
        {
          id: '104',
          msisdn: '62812000\u000000004',
          message: 'ha\u0000lo\uDC00',
          sent_at: '2026-11-30 10:00:07',
          status_code: '22',
          status: 'Deli\u0000vered',
        },
      ]),
    ).toEqual([
      {
        providerMessageId: '104',
        msisdn: '6281200000004',
        text: 'halo\uFFFD',
        sentAt: new Date('2026-11-30T03:00:07Z'),
        statusCode: '22',
        statusText: 'Delivered',
      },
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

describe('comparing the report with our messages', () => {
  const row = (id: string, code: string, smsCount = '1') => ({
    id,
    msisdn: '6281200000001',
    message: 'halo',
    sent_at: '2026-11-30 10:00:05',
    sms_count: smsCount,
    status_code: code,
  });
  const ours = (id: string, status: string, segments = 1): MessageFacts => ({ id, status, segments });

  it('reads sms_count; a count that is not a number is left out', () => {
    const [a, b] = reportedSends([row('1', '22', '3'), row('2', '22', 'dua')]);
    expect([a.smsCount, b.smsCount]).toEqual([3, undefined]);
  });

  it('finds unknown ids, final statuses that differ, more parts than charged, and our sends it does not list', () => {
    const sends = reportedSends([
      row('1', '22'), // agrees
      row('2', '22'), // ours failed (a 52 callback): differs
      row('3', '52'), // ours delivered: differs
      row('4', '50'), // ours expired: differs (expired was charged, the provider did not)
      row('5', '22'), // ours still pending (not final): no verdict
      row('6', '20'), // theirs not final: no verdict
      row('7', '22', '2'), // one segment charged, two counted
      row('8', '22', '2'), // two segments charged, two counted
      row('9', ''), // nobody's
    ]);
    const facts = new Map([
      ['1', ours('m1', 'delivered')],
      ['2', ours('m2', 'failed')],
      ['3', ours('m3', 'delivered')],
      ['4', ours('m4', 'expired')],
      ['5', ours('m5', 'pending')],
      ['6', ours('m6', 'delivered')],
      ['7', ours('m7', 'delivered')],
      ['8', ours('m8', 'delivered', 2)],
    ]);
    const submitted = [
      { id: 'm1', providerMessageId: '1' },
      { id: 'm10', providerMessageId: '10' },
    ];
    expect(compareReport(sends, facts, submitted)).toEqual({
      unknown: [
        {
          providerMessageId: '9',
          msisdn: '6281200000001',
          sentAt: new Date('2026-11-30T03:00:05Z'),
          providerStatusCode: null,
        },
      ],
      statusDiffers: [
        { messageId: 'm2', providerMessageId: '2', ours: 'failed', theirs: 'delivered', providerStatusCode: 22 },
        { messageId: 'm3', providerMessageId: '3', ours: 'delivered', theirs: 'failed', providerStatusCode: 52 },
        { messageId: 'm4', providerMessageId: '4', ours: 'expired', theirs: 'failed', providerStatusCode: 50 },
      ],
      moreParts: [{ messageId: 'm7', providerMessageId: '7', segments: 1, smsCount: 2 }],
      missing: [{ messageId: 'm10', providerMessageId: '10' }],
    });
  });
});

describe('our unlisted sends near the edges of the range (to look for in the adjacent day)', () => {
  // The Jakarta day 2026-11-30: [17:00Z the day before, 17:00Z).
  const from = new Date('2026-11-29T17:00:00Z');
  const to = new Date('2026-11-30T17:00:00Z');
  const sent = (id: string, at: string) => ({ id: `m${id}`, providerMessageId: id, submittedAt: new Date(at) });

  it('takes those within MATCH_SLACK_MS (5 min) of either midnight that the report does not list', () => {
    const submitted = [
      sent('1', '2026-11-29T17:00:00Z'), // 00:00:00: before
      sent('2', '2026-11-29T17:04:59Z'), // 00:04:59: before
      sent('3', '2026-11-29T17:05:00Z'), // 00:05:00: not near an edge
      sent('4', '2026-11-30T03:00:00Z'), // midday
      sent('5', '2026-11-30T16:55:00Z'), // 23:55:00: after
      sent('6', '2026-11-30T16:59:59Z'), // 23:59:59: after, but listed
      sent('7', '2026-11-30T16:54:59Z'), // 23:54:59: not near an edge
    ];
    const near = unlistedNearEdges(submitted, new Set(['6']), from, to);
    expect(near.before.map((m) => m.providerMessageId)).toEqual(['1', '2']);
    expect(near.after.map((m) => m.providerMessageId)).toEqual(['5']);
  });

  it('none when the report lists them all (the usual night: no adjacent day is downloaded)', () => {
    const submitted = [sent('1', '2026-11-29T17:00:30Z'), sent('2', '2026-11-30T16:59:30Z')];
    expect(unlistedNearEdges(submitted, new Set(['1', '2']), from, to)).toEqual({ before: [], after: [] });
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
