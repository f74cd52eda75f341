import { normalizeMsisdn } from './msisdn.js';

describe('normalizeMsisdn', () => {
  describe('accepts Indonesian mobile numbers in common spellings', () => {
    it.each<[input: string, msisdn: string]>([
      ['+62 812-3456-7890', '6281234567890'],
      ['+6281234567890', '6281234567890'],
      ['6281234567890', '6281234567890'],
      ['006281234567890', '6281234567890'],
      ['0812 3456 7890', '6281234567890'],
      ['081234567890', '6281234567890'],
      ['(0812) 3456-7890', '6281234567890'],
      ['0812.3456.7890', '6281234567890'],
      ['  +62 (812) 3456 7890  ', '6281234567890'],
      ['62811129869', '62811129869'], // the provider document's own example
      ['0812345678', '62812345678'], // shortest: 9 digits after 62
      ['+62 8123 4567 8901', '62812345678901'], // longest: 12 digits after 62
      // Sandbox test numbers (62899…) are in Tri's 0895–0899 range: libphonenumber says MOBILE.
      ['6289912345678', '6289912345678'],
      ['+62 899-0000-0001', '6289900000001'],
      ['0899 1234 5678', '6289912345678'],
    ])('%j → %s', (input, msisdn) => {
      expect(normalizeMsisdn(input)).toEqual({ ok: true, msisdn });
    });
  });

  // Pins each operator range, so a libphonenumber metadata update that drops one fails here.
  describe.each([
    '811',
    '812',
    '813',
    '814',
    '815',
    '816',
    '817',
    '818',
    '819',
    '821',
    '822',
    '823',
    '831',
    '832',
    '833',
    '838',
    '851',
    '852',
    '853',
    '855',
    '856',
    '857',
    '858',
    '859',
    '877',
    '878',
    '881',
    '882',
    '883',
    '884',
    '885',
    '886',
    '887',
    '888',
    '889',
    '895',
    '896',
    '897',
    '898',
    '899',
  ])('operator range 0%s', (prefix) => {
    it.each([9, 10, 11, 12])('accepts %i national digits', (length) => {
      const national = (prefix + '12345678901').slice(0, length);
      expect(normalizeMsisdn(`0${national}`)).toEqual({ ok: true, msisdn: `62${national}` });
    });
  });

  describe('rejects', () => {
    it.each<[label: string, input: string]>([
      ['Jakarta landline', '02112345678'],
      ['Jakarta landline in international form', '+62 21 1234 5678'],
      ['Surabaya landline', '0315123456'],
      ['special services 080x', '08041234567'],
      ['unallocated 084x', '08412345678'],
      ['Singapore mobile', '+6591234567'],
      ['Singapore via 00', '006591234567'],
      ['US number', '+1 415 555 0100'],
      ['letters', 'abc'],
      ['digits with letters', '0812abc34567'],
      ['empty', ''],
      ['blank', ' '],
      ['only separators', '+ ( ) - .'],
      ['too short: 08', '08'],
      ['too short: 8 national digits', '081234567'],
      ['too long: 13 national digits', '+62 8123 4567 8901 2'],
      ['20 digits', '08123456789012345678'],
      ['very long input', '0'.repeat(10_000)],
      ['NUL byte', '0812345678\u00009'],
      ['NUL byte at the end', '081234567890\u0000'],
      ['tab', '0812\t34567890'],
      ['newline', '081234567890\n'],
      ['DEL', '0812\u007f34567890'],
      ['plus in the middle', '0812+34567890'],
      ['two plus signs', '++6281234567890'],
      ['national number without trunk 0', '81234567890'],
      ['trunk 0 after the country code', '+62 0812 3456 7890'],
      ['full-width digits', '０８１２３４５６７８９０'],
      ['Arabic-Indic digits', '٠٨١٢٣٤٥٦٧٨٩٠'],
    ])('%s', (_label, input) => {
      const result = normalizeMsisdn(input);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.reason).toEqual(expect.any(String));
    });

    it('a non-string at runtime (untyped JSON) without throwing', () => {
      expect(normalizeMsisdn(12345 as unknown as string).ok).toBe(false);
      expect(normalizeMsisdn(null as unknown as string).ok).toBe(false);
    });
  });
});
