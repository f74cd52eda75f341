import { countSegments, MAX_SEGMENTS_DEFAULT, providerSegmentCount, type SegmentCount } from './segments.js';

const repeat = (text: string, times: number): string => text.repeat(times);

describe('countSegments', () => {
  type Row = [label: string, text: string, expected: Partial<SegmentCount>];

  describe('GSM-7 (160 single / 153 per part)', () => {
    const rows: Row[] = [
      ['empty text is one segment', '', { encoding: 'GSM-7', segments: 1, units: 0, characters: 0, billedSegments: 1 }],
      ['1 char', 'a', { encoding: 'GSM-7', segments: 1, units: 1, characters: 1 }],
      ['153 chars', repeat('a', 153), { segments: 1, units: 153 }],
      ['154 chars', repeat('a', 154), { segments: 1, units: 154 }],
      ['160 chars fit one SMS', repeat('a', 160), { segments: 1, units: 160, billedSegments: 1 }],
      ['161 chars need two parts', repeat('a', 161), { segments: 2, units: 161, billedSegments: 2 }],
      ['200 chars: two parts, provider also 2', repeat('a', 200), { segments: 2, billedSegments: 2 }],
      ['306 chars = 2 × 153', repeat('a', 306), { segments: 2, units: 306 }],
      ['307 chars', repeat('a', 307), { segments: 3, units: 307 }],
      ['459 chars = 3 × 153', repeat('a', 459), { segments: 3 }],
      ['460 chars', repeat('a', 460), { segments: 4 }],
      ['1530 chars = 10 parts', repeat('a', 1530), { segments: 10 }],
      ['\\n and \\r are basic-table characters', 'line 1\r\nline 2', { encoding: 'GSM-7', units: 14, characters: 14 }],
      ['@ £ $ ¥ è é ù ì ò Ç Ø ø Å å', '@£$¥èéùìòÇØøÅå', { encoding: 'GSM-7', units: 14 }],
      ['Greek capitals of the basic table', 'ΔΦΓΛΩΠΨΣΘΞ', { encoding: 'GSM-7', units: 10 }],
      ['Æ æ ß É ¤ ¡ ¿ Ä Ö Ñ Ü § ä ö ñ ü à _', 'ÆæßÉ¤¡¿ÄÖÑÜ§äöñüà_', { encoding: 'GSM-7', units: 18 }],
      ['printable ASCII of the basic table', ' !"#%&\'()*+,-./0123456789:;<=>?AZaz', { encoding: 'GSM-7', units: 35 }],
      [
        'Indonesian text',
        'Kode OTP Anda: 123456. Jangan berikan kepada siapa pun!',
        { encoding: 'GSM-7', segments: 1 },
      ],
    ];
    it.each(rows)('%s', (_label, text, expected) => {
      expect(countSegments(text)).toMatchObject(expected);
    });
  });

  describe('GSM-7 extension table (2 septets each)', () => {
    const rows: Row[] = [
      ['one €', '€', { encoding: 'GSM-7', units: 2, characters: 1, segments: 1 }],
      ['all extension characters', '^{}\\[~]|€\f', { encoding: 'GSM-7', units: 20, characters: 10 }],
      [
        '80 € = 160 septets = 1 segment',
        repeat('€', 80),
        { segments: 1, units: 160, characters: 80, billedSegments: 1 },
      ],
      ['81 € = 162 septets = 2 segments', repeat('€', 81), { segments: 2, units: 162, characters: 81 }],
      // 306 septets would be exactly 2 × 153, but after 152 'a' the ESC+€ pair would straddle
      // septets 153/154, so it moves whole to part 2, which then overflows into part 3.
      ['€ at a part boundary is not split', repeat('a', 152) + '€' + repeat('a', 152), { segments: 3, units: 306 }],
      [
        'same septets without the straddle fit in 2',
        repeat('a', 151) + '€' + repeat('a', 153),
        { segments: 2, units: 306 },
      ],
      [
        '153 € = 306 septets, but only 76 € (152 septets) fit a part → 3',
        repeat('€', 153),
        { segments: 3, units: 306 },
      ],
      ['152 € = 304 septets = 2 parts of 76', repeat('€', 152), { segments: 2, units: 304 }],
    ];
    it.each(rows)('%s', (_label, text, expected) => {
      expect(countSegments(text)).toMatchObject(expected);
    });
  });

  describe('UCS-2 (70 single / 67 per part, UTF-16 units)', () => {
    const rows: Row[] = [
      ['one ж', 'ж', { encoding: 'UCS-2', segments: 1, units: 1, characters: 1 }],
      ['65 chars: 1 segment, provider 1', repeat('ж', 65), { segments: 1, billedSegments: 1 }],
      ['70 ж fit one SMS', repeat('ж', 70), { segments: 1, units: 70 }],
      ['71 ж need two parts', repeat('ж', 71), { segments: 2, units: 71 }],
      ['134 ж = 2 × 67', repeat('ж', 134), { segments: 2, units: 134 }],
      ['135 ж', repeat('ж', 135), { segments: 3, units: 135 }],
      ['emoji counts 2 units, 1 character', '😀', { encoding: 'UCS-2', units: 2, characters: 1, segments: 1 }],
      ['35 emoji = 70 units = 1 segment', repeat('😀', 35), { segments: 1, units: 70, characters: 35 }],
      ['36 emoji = 72 units = 2 segments', repeat('😀', 36), { segments: 2, units: 72, characters: 36 }],
      // 134 units would be exactly 2 × 67, but after 66 units the surrogate pair would be split at
      // unit 67/68, so the emoji moves whole to part 2, which then overflows into part 3.
      ['emoji at a part boundary is not split', repeat('ж', 66) + '😀' + repeat('ж', 66), { segments: 3, units: 134 }],
      [
        'same units without the straddle fit in 2',
        repeat('ж', 65) + '😀' + repeat('ж', 67),
        { segments: 2, units: 134 },
      ],
      ['67 emoji = 134 units, 33 per part → 3', repeat('😀', 67), { segments: 3, units: 134 }],
      ['66 emoji = 132 units, 33 per part → 2', repeat('😀', 66), { segments: 2, units: 132 }],
      [
        'lone surrogate is one non-GSM unit',
        '\ud800',
        { encoding: 'UCS-2', units: 1, characters: 1, nonGsmCharacters: ['\ud800'] },
      ],
    ];
    it.each(rows)('%s', (_label, text, expected) => {
      expect(countSegments(text)).toMatchObject(expected);
    });
  });

  describe('what forces UCS-2', () => {
    it('one ж in otherwise GSM text switches the whole message and is reported', () => {
      const text = repeat('a', 100) + 'ж';
      expect(countSegments(text)).toEqual({
        encoding: 'UCS-2',
        segments: 2,
        units: 101,
        characters: 101,
        nonGsmCharacters: ['ж'],
        billedSegments: 2,
      });
    });

    it('lists distinct non-GSM characters in order of first appearance, emoji whole', () => {
      expect(countSegments('Halo 😀 ж, ça va? ж😀 “ok” €').nonGsmCharacters).toEqual(['😀', 'ж', 'ç', '“', '”']);
    });

    it.each([
      ['ç (only Ç is in the table)', 'ç'],
      ['á', 'á'],
      ['curly quote', '’'],
      ['tab', '\t'],
      ['NUL (0x00 is @, not U+0000)', '\u0000'],
      ['literal ESC', '\u001b'],
      ['Ohm sign (not Greek Ω)', '\u2126'],
      ['non-breaking space', '\u00a0'],
      ['decomposed é (e + combining acute)', 'e\u0301'],
    ])('%s is not GSM-7', (_label, text) => {
      expect(countSegments(text).encoding).toBe('UCS-2');
    });

    it('GSM text has no nonGsmCharacters', () => {
      expect(countSegments('Hello € [ok]').nonGsmCharacters).toEqual([]);
    });
  });

  describe('billedSegments never below the provider 160-characters rule', () => {
    it.each<[string, string, number, number]>([
      ['160 GSM chars', repeat('a', 160), 1, 1],
      ['200 GSM chars', repeat('a', 200), 2, 2],
      ['UCS-2 65 chars', repeat('ж', 65), 1, 1],
      ['UCS-2 160 emoji: 320 units → 5 parts, provider 1', repeat('😀', 160), 5, 5],
      ['empty', '', 1, 1],
    ])('%s', (_label, text, segments, billed) => {
      const count = countSegments(text);
      expect(count.segments).toBe(segments);
      expect(count.billedSegments).toBe(billed);
      expect(count.billedSegments).toBeGreaterThanOrEqual(providerSegmentCount(count.characters));
    });

    it('providerSegmentCount is ceil(characters / 160), at least 1', () => {
      expect(providerSegmentCount(0)).toBe(1);
      expect(providerSegmentCount(160)).toBe(1);
      expect(providerSegmentCount(161)).toBe(2);
      expect(providerSegmentCount(321)).toBe(3);
    });

    it('holds for random texts', () => {
      const alphabet = ['a', '€', 'ж', '😀', '\n', ' '];
      let seed = 42;
      const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      for (let n = 0; n < 500; n++) {
        let text = '';
        const length = Math.floor(random() * 400);
        for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
        const count = countSegments(text);
        expect(count.billedSegments).toBe(Math.max(count.segments, providerSegmentCount(count.characters)));
        expect(count.characters).toBe([...text].length);
      }
    });
  });

  it('MAX_SEGMENTS_DEFAULT is 10', () => {
    expect(MAX_SEGMENTS_DEFAULT).toBe(10);
  });
});
