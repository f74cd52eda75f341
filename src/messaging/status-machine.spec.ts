import { transitionFor } from './status-machine';

describe('transitionFor', () => {
  it.each([
    ['submitted', 22, 'delivered'],
    ['pending', 22, 'delivered'],
    ['uncertain', 22, 'delivered'],
    ['expired', 22, 'delivered'],
    ['delivered', 22, null],
    ['failed', 22, null],
    ['canceled', 22, null],
    ['submitted', 20, 'pending'],
    ['uncertain', 20, 'pending'],
    ['pending', 20, null],
    ['delivered', 20, null],
    ['expired', 20, null],
    ['submitted', 50, 'failed'],
    ['pending', 51, 'failed'],
    ['uncertain', 52, 'failed'],
    ['delivered', 52, null],
    ['failed', 50, null],
    ['expired', 50, null],
    ['queued', 22, null],
    ['submitted', 99, null],
  ])('%s + %d -> %s', (current, code, expected) => {
    expect(transitionFor(current, code)?.status ?? null).toBe(expected);
  });
  it('maps failure codes to reasons and refunds them', () => {
    expect(transitionFor('submitted', 50)).toEqual({
      status: 'failed',
      final: true,
      failureReason: 'provider_balance_empty',
      refund: true,
    });
    expect(transitionFor('submitted', 51)).toMatchObject({ failureReason: 'provider_validity_expired' });
    expect(transitionFor('submitted', 52)).toMatchObject({ failureReason: 'invalid_number' });
  });
});
