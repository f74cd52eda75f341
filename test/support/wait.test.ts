import { waitFor } from './wait';

describe('waitFor', () => {
  it('returns the first value that satisfies the condition', async () => {
    let n = 0;
    await expect(
      waitFor(
        'n to reach 3',
        () => ++n,
        (v) => v >= 3,
        1_000,
        1,
      ),
    ).resolves.toBe(3);
  });

  it('without a condition, waits for a truthy value and returns it', async () => {
    let n = 0;
    await expect(waitFor('a value', () => (++n >= 2 ? { n } : undefined), undefined, 1_000, 1)).resolves.toEqual({
      n: 2,
    });
  });

  it('throws on timeout, naming what it waited for and the last value (never returns it silently)', async () => {
    await expect(
      waitFor(
        'the impossible',
        () => ({ status: 'queued' }),
        (v) => v.status === 'delivered',
        50,
        5,
      ),
    ).rejects.toThrow('timed out after 50 ms waiting for the impossible; last value: {"status":"queued"}');
  });
});
