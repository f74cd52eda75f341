import { normalizeKnobs, SeededRandom } from './sandbox-knobs';

describe('sandbox knobs', () => {
  it('accepts rates, booleans and single-number ranges', () => {
    expect(
      normalizeKnobs({ http500Rate: 0.5, outOfOrderDlr: true, latencyMs: 5, dlrDelayMs: [1, 2], inboxFormat: 'json' }),
    ).toEqual({
      http500Rate: 0.5,
      outOfOrderDlr: 1,
      latencyMs: [5, 5],
      dlrDelayMs: [1, 2],
      inboxFormat: 'json',
    });
  });
  it.each([
    { http500Rate: 2 },
    { http500Rate: '0.5' },
    { latencyMs: [5, 1] },
    { latencyMs: [-1, 1] },
    { nope: 1 },
    { inboxFormat: 'xml' },
  ])('refuses %p', (input) => {
    expect(() => normalizeKnobs(input)).toThrow(RangeError);
  });

  it('the RNG is deterministic per seed, and 0/1 rates draw nothing', () => {
    const a = new SeededRandom(7);
    const b = new SeededRandom(7);
    const seqA = Array.from({ length: 5 }, () => a.next());
    expect(Array.from({ length: 5 }, () => b.next())).toEqual(seqA);
    const c = new SeededRandom(7);
    expect(c.chance(0)).toBe(false);
    expect(c.chance(1)).toBe(true);
    expect(c.between([3, 3])).toBe(3);
    expect(c.next()).toBe(seqA[0]);
    const hits = Array.from({ length: 10_000 }, () => a.chance(0.3)).filter(Boolean).length;
    expect(hits).toBeGreaterThan(2_700);
    expect(hits).toBeLessThan(3_300);
  });
});
