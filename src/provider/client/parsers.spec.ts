import {
  formatProviderDate,
  parseBalanceBody,
  parseCsv,
  parseCsvReport,
  parseInboxBody,
  parseJakartaDateTime,
  parseReportBody,
  parseSendBody,
} from './parsers';

const BOM = '\uFEFF';

describe('parseSendBody', () => {
  const accepted: Array<[string, string, string]> = [
    ['bare id (document example)', '18319370', '18319370'],
    ['trailing newline', '18319370\n', '18319370'],
    ['CRLF and spaces', '  18319370 \r\n', '18319370'],
    ['tabs and blank lines', '\t\n18319370\n\n', '18319370'],
    ['BOM', `${BOM}18319370`, '18319370'],
    ['NBSP around', '\u00a018319370\u00a0', '18319370'],
    ['huge number kept exactly (beyond 2^53)', '123456789012345678901234567890', '123456789012345678901234567890'],
    ['leading zeros kept', '00042', '00042'],
  ];
  it.each(accepted)('accepts %s', (_name, body, id) => {
    expect(parseSendBody(body)).toEqual({ ok: true, providerMessageId: id });
  });

  const rejected: Array<[string, string, RegExp]> = [
    ['empty', '', /empty/],
    ['whitespace only', ' \r\n\t', /empty/],
    ['BOM only', BOM, /empty/],
    ['zero', '0', /zero/],
    ['zeros with newline', '000\n', /zero/],
    ['negative', '-1', /not an id/],
    ['decimal', '18319370.5', /not an id/],
    ['exponent', '1e9', /not an id/],
    ['plus sign', '+18319370', /not an id/],
    ['two numbers', '18319370\n18319371', /not an id/],
    ['id with text', '18319370 OK', /not an id/],
    ['free-text error', 'Username atau Password salah', /not an id: Username atau Password salah/],
    ['report-like text', 'Success Send', /not an id/],
    ['html page', '<html><body><h1>500</h1></body></html>', /html page/],
    ['doctype page', '<!DOCTYPE html>\n<html>…', /html page/],
    ['php warning', '<br />\n<b>Warning</b>: mysqli_connect()', /html page/],
    ['arabic-indic digits are not digits', '١٢٣', /not an id/],
    ['fullwidth digits', '１２３', /not an id/],
  ];
  it.each(rejected)('rejects %s', (_name, body, reason) => {
    const parsed = parseSendBody(body);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason).toMatch(reason);
  });

  it('keeps long garbage out of the reason', () => {
    const parsed = parseSendBody('x'.repeat(10_000));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason.length).toBeLessThan(200);
  });
});

describe('parseReportBody', () => {
  const reports: Array<[string, string, number, string]> = [
    ['delivered', '22, Delivered', 22, 'Delivered'],
    ['no space after comma', '50,Periode Habis', 50, 'Periode Habis'],
    ['spaces around, newline', ' 20 , Pending\n', 20, 'Pending'],
    ['CRLF', '22, Delivered\r\n', 22, 'Delivered'],
    ['BOM', `${BOM}22, Delivered`, 22, 'Delivered'],
    ['saldo habis', '50, Saldo Habis', 50, 'Saldo Habis'],
    ['no charge', '50, No Charge', 50, 'No Charge'],
    ['code only', '22', 22, ''],
    ['code with newline only', '20\n', 20, ''],
    ['semicolon separator', '22;Delivered', 22, 'Delivered'],
    ['space separator', '22 Delivered', 22, 'Delivered'],
    ['text with comma kept', '50, Saldo Habis, chek saldo', 50, 'Saldo Habis, chek saldo'],
    ['only the first line counts', '22, Delivered\n20, Pending', 22, 'Delivered'],
    ['undocumented code kept', '99, Whatever', 99, 'Whatever'],
  ];
  it.each(reports)('reads %s', (_name, body, code, text) => {
    expect(parseReportBody(body)).toEqual({ kind: 'report', code, text });
  });

  it('drops NUL and lone surrogates from the text (PostgreSQL refuses them in text: the report could not be stored)', () => {
    expect(parseReportBody('22, Deliv\u0000ered\uD800')).toEqual({ kind: 'report', code: 22, text: 'Delivered\uFFFD' });
  });

  const none: Array<[string, string]> = [
    ['Success Send', 'Success Send'],
    ['Success Send with newline', 'Success Send\r\n'],
    ['empty', ''],
    ['whitespace', '  \n'],
    ['html', '<html><body>Not Found</body></html>'],
    ['free text', 'Report not found'],
    ['a long digit run is an id, not a status', '18319370'],
    ['negative', '-22, Delivered'],
  ];
  it.each(none)('no report yet for %s', (_name, body) => {
    expect(parseReportBody(body)).toEqual({ kind: 'none' });
  });
});

describe('parseBalanceBody', () => {
  // 2027-02-25 10:00:00 in Jakarta (UTC+7) is 03:00:00 UTC.
  const expiry = new Date('2027-02-25T03:00:00.000Z');
  const balances: Array<[string, string, string, Date]> = [
    ['observed form', '125000, 2027/02/25-10:00:00', '125000', expiry],
    ['decimal', '125000.50, 2027/02/25-10:00:00', '125000.50', expiry],
    ['no space, newline', '125000,2027/02/25-10:00:00\n', '125000', expiry],
    ['BOM and CRLF', `${BOM}125000, 2027/02/25-10:00:00\r\n`, '125000', expiry],
    ['zero balance', '0, 2027/02/25-10:00:00', '0', expiry],
    ['negative balance kept as the provider wrote it', '-500, 2027/02/25-10:00:00', '-500', expiry],
    ['huge balance kept exactly', '123456789012345678901.25, 2027/02/25-10:00:00', '123456789012345678901.25', expiry],
    ['dash date with space', '125000, 2027-02-25 10:00:00', '125000', expiry],
    ['date only (midnight Jakarta)', '125000, 2027/02/25', '125000', new Date('2027-02-24T17:00:00.000Z')],
  ];
  it.each(balances)('reads %s', (_name, body, balance, expiresAt) => {
    expect(parseBalanceBody(body)).toEqual({ ok: true, balance, expiresAt });
  });

  const garbage: Array<[string, string]> = [
    ['empty', ''],
    ['wrong credentials text', 'Username atau Password salah'],
    ['html', '<html><body>Error</body></html>'],
    ['balance only', '125000'],
    ['thousands separator (ambiguous)', '125,000, 2027/02/25-10:00:00'],
    ['comma decimal', '125000,50, 2027/02/25-10:00:00'],
    ['impossible date', '125000, 2027/02/30-10:00:00'],
    ['impossible hour', '125000, 2027/02/25-25:00:00'],
    ['float exponent', '1.25e5, 2027/02/25-10:00:00'],
  ];
  it.each(garbage)('refuses %s', (_name, body) => {
    expect(parseBalanceBody(body).ok).toBe(false);
  });
});

describe('parseJakartaDateTime', () => {
  it.each([
    ['2027/02/25-10:00:00', '2027-02-25T03:00:00.000Z'],
    ['2027-02-25T10:00:00', '2027-02-25T03:00:00.000Z'],
    ['2027-02-25T10:00:00Z', '2027-02-25T10:00:00.000Z'],
    ['2027-02-25T10:00:00+07:00', '2027-02-25T03:00:00.000Z'],
    ['25-02-2027 10:00:00', '2027-02-25T03:00:00.000Z'],
    ['25/02/2027 10:00', '2027-02-25T03:00:00.000Z'],
  ])('%s', (text, iso) => {
    expect(parseJakartaDateTime(text)?.toISOString()).toBe(iso);
  });
  it.each(['', 'yesterday', '2027/13/01', '99999'])('undefined for %p', (text) => {
    expect(parseJakartaDateTime(text)).toBeUndefined();
  });
});

describe('formatProviderDate', () => {
  it.each([
    // 16:59:59 UTC is 23:59:59 in Jakarta (same day); 17:00 UTC is already the next day there.
    ['2026-03-01T16:59:59.000Z', '01-03-2026'],
    ['2026-03-01T17:00:00.000Z', '02-03-2026'],
    ['2026-12-31T20:00:00.000Z', '01-01-2027'],
    ['2026-01-05T00:00:00.000Z', '05-01-2026'],
  ])('%s → %s', (iso, text) => {
    expect(formatProviderDate(new Date(iso))).toBe(text);
  });
});

describe('parseCsv / parseCsvReport', () => {
  it('reads quoted fields with delimiters, quotes and line breaks, CRLF and LF', () => {
    const text = 'id,msisdn,message\r\n1,628111,"Halo, ""kamu""\r\nbaris dua"\n2,628222,plain\r\n';
    expect(parseCsv(text)).toEqual([
      ['id', 'msisdn', 'message'],
      ['1', '628111', 'Halo, "kamu"\r\nbaris dua'],
      ['2', '628222', 'plain'],
    ]);
  });

  it('trims unquoted fields, keeps quoted whitespace, skips blank lines', () => {
    expect(parseCsv('a, b ," c "\n\n\r\n1,2,3')).toEqual([
      ['a', 'b', ' c '],
      ['1', '2', '3'],
    ]);
  });

  it('keeps empty fields and a last line without a newline', () => {
    expect(parseCsv('a,,c\n,,')).toEqual([
      ['a', '', 'c'],
      ['', '', ''],
    ]);
  });

  it('detects semicolon and tab separated files', () => {
    expect(parseCsv('a;b\n1;"x;y"')).toEqual([
      ['a', 'b'],
      ['1', 'x;y'],
    ]);
    expect(parseCsv('a\tb\n1\t2')).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
  });

  // Quirks as csv-parse reads them (with the options in parseCsv).
  it('reads CRLF, LF and lone CR line ends mixed in one file', () => {
    expect(parseCsv('a,b\r\n1,2\n3,4\r5,6')).toEqual([
      ['a', 'b'],
      ['1', '2'],
      ['3', '4'],
      ['5', '6'],
    ]);
  });

  it('keeps a quote inside an unquoted field as text, and ignores spaces around a quoted one', () => {
    expect(parseCsv('a,b,c\n1,ab"c"d, "x" ')).toEqual([
      ['a', 'b', 'c'],
      ['1', 'ab"c"d', 'x'],
    ]);
  });

  it('skips lines of only spaces or only an empty quoted field', () => {
    expect(parseCsv('a,b\n   \n""\n1,2')).toEqual([
      ['a', 'b'],
      ['1', '2'],
    ]);
  });

  it.each([
    ['a quote never closed', 'id,message,status_code\n1,"Halo,22\n2,ok,22\n'],
    ['text after a closing quote', 'id,message,status_code\n1,"Halo" dunia,22\n'],
  ])('refuses a report with %s rather than guessing its rows', (_name, body) => {
    expect(parseCsvReport(body)).toEqual({ ok: false, reason: expect.stringMatching(/^unreadable CSV report: /) });
  });

  const reports: Array<[string, string, string[], Array<Record<string, string>>]> = [
    [
      'sandbox-style report with BOM and CRLF',
      `${BOM}id,msisdn,message,status_code\r\n18319370,62811,"a, b",22\r\n`,
      ['id', 'msisdn', 'message', 'status_code'],
      [{ id: '18319370', msisdn: '62811', message: 'a, b', status_code: '22' }],
    ],
    ['header only', 'id,msisdn\n', ['id', 'msisdn'], []],
    ['empty body = empty report', '  \r\n', [], []],
    [
      'short and long rows',
      'a,b\n1\n1,2,3',
      ['a', 'b'],
      [
        { a: '1', b: '' },
        { a: '1', b: '2', column_3: '3' },
      ],
    ],
    [
      'duplicate and blank header names',
      'x,x,\n1,2,3',
      ['x', 'x_2', 'column_3'],
      [{ x: '1', x_2: '2', column_3: '3' }],
    ],
  ];
  it.each(reports)('report: %s', (_name, body, header, rows) => {
    expect(parseCsvReport(body)).toEqual({ ok: true, header, rows });
  });

  it.each([
    ['an HTML page', '<html><body>Username atau Password salah</body></html>'],
    ['a free-text error', 'Username atau Password salah'],
    ['a date format error', 'Format tanggal salah\r\n'],
    ['a lone empty quoted field', '""'],
  ])('refuses %s instead of a report', (_name, body) => {
    expect(parseCsvReport(body).ok).toBe(false);
  });
});

describe('parseInboxBody', () => {
  const at = new Date('2026-03-01T03:04:05.000Z'); // 10:04:05 Jakarta
  const shapes: Array<[string, string, Array<{ msisdn: string; text: string; receivedAt?: Date }>]> = [
    ['empty', '', []],
    [
      'CSV with header',
      'id,msisdn,message,received_at\r\n1,62811,"Halo, apa kabar",2026-03-01 10:04:05\r\n',
      [{ msisdn: '62811', text: 'Halo, apa kabar', receivedAt: at }],
    ],
    [
      'CSV with Indonesian header, semicolons',
      'no;pengirim;isi;tanggal\n1;62811;Halo;01-03-2026 10:04:05\n',
      [{ msisdn: '62811', text: 'Halo', receivedAt: at }],
    ],
    ['CSV with header, no date column', 'hp,sms\n62811,Halo\n', [{ msisdn: '62811', text: 'Halo' }]],
    [
      'JSON array of objects',
      '[{"from":"62811","message":"Halo","date":"2026-03-01 10:04:05"}]',
      [{ msisdn: '62811', text: 'Halo', receivedAt: at }],
    ],
    [
      'JSON wrapped in an object',
      '{"status":"ok","data":[{"msisdn":62811,"text":"Halo"}]}',
      [{ msisdn: '62811', text: 'Halo' }],
    ],
    [
      'JSON array of arrays',
      '[["62811","2026-03-01 10:04:05","Halo"]]',
      [{ msisdn: '62811', text: 'Halo', receivedAt: at }],
    ],
    ['JSON empty array', '[]', []],
    [
      'lines: msisdn,text (text keeps its commas)',
      '62811,Halo, apa kabar\n62822,Ok\n',
      [
        { msisdn: '62811', text: 'Halo, apa kabar' },
        { msisdn: '62822', text: 'Ok' },
      ],
    ],
    [
      'lines: msisdn,date,text with CRLF',
      '62811,2026-03-01 10:04:05,Halo\r\n',
      [{ msisdn: '62811', text: 'Halo', receivedAt: at }],
    ],
    [
      'lines: date|msisdn|text',
      '2026/03/01-10:04:05|62811|Halo | dunia\n',
      [{ msisdn: '62811', text: 'Halo | dunia', receivedAt: at }],
    ],
    ['lines: tab separated with +', '+62811\tHalo\n', [{ msisdn: '+62811', text: 'Halo' }]],
    ['BOM', `${BOM}62811,Halo`, [{ msisdn: '62811', text: 'Halo' }]],
    ['lines: a quote never closed (not CSV: read line by line)', '62811,"Halo\n', [{ msisdn: '62811', text: '"Halo' }]],
  ];
  it.each(shapes)('reads %s', (_name, body, expected) => {
    const parsed = parseInboxBody(body);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(
      parsed.items.map(({ msisdn, text, receivedAt }) => ({ msisdn, text, ...(receivedAt ? { receivedAt } : {}) })),
    ).toEqual(expected);
  });

  it('keeps every raw field of an item', () => {
    const parsed = parseInboxBody('[{"from":"62811","message":"Halo","modem":"3","extra":{"a":1}}]');
    expect(parsed.ok && parsed.items[0].fields).toEqual({
      from: '62811',
      message: 'Halo',
      modem: '3',
      extra: '{"a":1}',
    });
  });

  const errors: Array<[string, string]> = [
    ['html', '<html><body>Username atau Password salah</body></html>'],
    ['free text', 'Username atau Password salah'],
    ['broken JSON', '[{"from":'],
    ['JSON items without a number', '[{"foo":"bar"}]'],
    ['one unreadable line among good ones', '62811,Halo\nthis is not a message\n'],
    ['a lone empty quoted field', '""'],
  ];
  it.each(errors)('refuses %s rather than dropping messages', (_name, body) => {
    expect(parseInboxBody(body).ok).toBe(false);
  });
});
