import { fromPublicId, toPublicId, uuidv7 } from './ids';

describe('ids', () => {
  it('round-trips public ids and refuses other kinds and shapes', () => {
    const u = uuidv7();
    const pub = toPublicId('message', u);
    expect(pub).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(fromPublicId('message', pub)).toBe(u);
    expect(fromPublicId('tenant', pub)).toBeNull();
    expect(fromPublicId('message', 'msg_xyz')).toBeNull();
    expect(fromPublicId('message', undefined)).toBeNull();
    expect(fromPublicId('message', `${pub}0`)).toBeNull();
  });
  it('makes strictly increasing UUIDv7s within one millisecond', () => {
    const ids = Array.from({ length: 5000 }, () => uuidv7(1_700_000_000_000));
    const sorted = [...ids].sort();
    expect(sorted).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids[0][14]).toBe('7');
  });
});
