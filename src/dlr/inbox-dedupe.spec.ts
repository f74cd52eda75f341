import { parseInboxBody } from '../provider/client';
import { inboxDedupeKeys } from './inbox-dedupe';

const row = (fields: Record<string, string>) => ({ fields });

describe('inboxDedupeKeys', () => {
  it('gives the same row the same key on every poll, whatever the field order', () => {
    const a = inboxDedupeKeys([row({ msisdn: '6281234567890', message: 'YA', received_at: '2026/11/30-10:00:00' })]);
    const b = inboxDedupeKeys([row({ received_at: '2026/11/30-10:00:00', message: 'YA', msisdn: '6281234567890' })]);
    expect(a).toEqual(b);
    expect(a[0]).toMatch(/^v1:[0-9a-f]{64}:1$/);
  });

  it('keeps the key of a row when newer rows arrive around it', () => {
    const old = row({ id: '7', msisdn: '6281234567890', message: 'YA' });
    const [first] = inboxDedupeKeys([old]);
    const later = inboxDedupeKeys([row({ id: '6', msisdn: '6281111111111', message: 'x' }), old]);
    expect(later[1]).toBe(first);
  });

  it.each([
    ['text', { msisdn: '6281234567890', message: 'TIDAK' }],
    ['number', { msisdn: '6281234567891', message: 'YA' }],
    ['time', { msisdn: '6281234567890', message: 'YA', received_at: '2026/11/30-10:00:01' }],
    ['provider id', { msisdn: '6281234567890', message: 'YA', id: '2' }],
    ['field name', { hp: '6281234567890', message: 'YA' }],
  ])('a different %s is a different message', (_what, fields) => {
    const base = { msisdn: '6281234567890', message: 'YA' };
    expect(inboxDedupeKeys([row(fields)])[0]).not.toBe(inboxDedupeKeys([row(base)])[0]);
  });

  it('tells identical rows of one answer apart by occurrence, stably across polls', () => {
    const same = row({ msisdn: '6281234567890', message: 'YA' });
    const keys = inboxDedupeKeys([same, row({ msisdn: '6280000000000', message: 'x' }), same]);
    expect(keys[0]).not.toBe(keys[2]);
    expect(keys[0].replace(/:1$/, ':2')).toBe(keys[2]);
    expect(inboxDedupeKeys([same, same])).toEqual([keys[0], keys[2]]);
  });

  it('is not fooled by separators inside values (fields are JSON-encoded, not joined)', () => {
    const a = inboxDedupeKeys([row({ msisdn: '62812', message: 'a","b' })]);
    const b = inboxDedupeKeys([row({ msisdn: '62812","message', message: 'b' })]);
    expect(a).not.toEqual(b);
  });

  it.each(['csv', 'json', 'lines'] as const)('keys the sandbox %s body the same on two reads', (format) => {
    const bodies = {
      csv: 'id,msisdn,message,received_at\r\n1,6281234567890,YA,2026/11/30-10:00:00\r\n',
      json: '[{"id":"1","msisdn":"6281234567890","message":"YA","received_at":"2026/11/30-10:00:00"}]',
      lines: '6281234567890,2026/11/30-10:00:00,YA\n',
    };
    const read = () => {
      const parsed = parseInboxBody(bodies[format]);
      if (!parsed.ok) throw new Error(parsed.reason);
      return inboxDedupeKeys(parsed.items);
    };
    expect(read()).toEqual(read());
    expect(read()).toHaveLength(1);
  });
});
