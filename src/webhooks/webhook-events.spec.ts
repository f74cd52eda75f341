import { MAX_ATTEMPTS, derivedEventId, retryDelayMs } from './webhook-events';

describe('webhook retry schedule', () => {
  it.each([
    [1, 5_000],
    [2, 300_000],
    [3, 1_800_000],
    [4, 7_200_000],
    [5, 18_000_000],
    [6, 36_000_000],
    [7, 50_400_000],
    [8, 72_000_000],
    [9, 86_400_000],
  ])('after failure %i waits about %i ms (±10 %%)', (n, base) => {
    expect(retryDelayMs(n, () => 0)).toBe(base * 0.9);
    expect(retryDelayMs(n, () => 0.5)).toBe(base);
    expect(retryDelayMs(n, () => 1)).toBe(Math.round(base * 1.1));
  });

  it('gives up after the tenth attempt, having retried for more than 24 h', () => {
    expect(MAX_ATTEMPTS).toBe(10);
    expect(retryDelayMs(10)).toBeNull();
    let total = 0;
    for (let n = 1; n < MAX_ATTEMPTS; n++) total += retryDelayMs(n, () => 0)!;
    expect(total).toBeGreaterThan(24 * 3600_000);
  });

  it('derives a stable, well-formed uuid per source row', () => {
    const a = derivedEventId('message_events:1');
    expect(a).toBe(derivedEventId('message_events:1'));
    expect(a).not.toBe(derivedEventId('message_events:2'));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});
