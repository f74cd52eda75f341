import { SendGate } from './send-gate';

describe('SendGate', () => {
  it('admits up to maxInFlight at once and refuses beyond a short wait', async () => {
    const gate = new SendGate({ maxInFlight: 2, ratePerSecond: Infinity, maxWaitMs: 20 });
    const a = await gate.acquire();
    const b = await gate.acquire();
    expect(a.admitted && b.admitted).toBe(true);
    const c = await gate.acquire();
    expect(c).toEqual({
      admitted: false,
      retryAfterMs: expect.any(Number),
      reason: expect.stringMatching(/in-flight limit \(2\)/),
    });
    expect(gate.inFlightCount).toBe(2);
  });

  it('hands a released slot to the first waiter (FIFO), and a double release frees only one slot', async () => {
    const gate = new SendGate({ maxInFlight: 1, ratePerSecond: 0, maxWaitMs: 1_000 });
    const first = await gate.acquire();
    const order: string[] = [];
    const second = gate.acquire().then((a) => (order.push('second'), a));
    const third = gate.acquire().then((a) => (order.push('third'), a));
    expect(gate.waitingCount).toBe(2);
    if (!first.admitted) throw new Error('not admitted');
    first.release();
    first.release();
    const s = await second;
    expect(order).toEqual(['second']);
    expect(gate.inFlightCount).toBe(1);
    if (!s.admitted) throw new Error('not admitted');
    s.release();
    expect((await third).admitted).toBe(true);
    expect(order).toEqual(['second', 'third']);
  });

  it('limits the rate with a token bucket and refills over time', async () => {
    let now = 0;
    const gate = new SendGate({ maxInFlight: 100, ratePerSecond: 10, burst: 2, maxWaitMs: 0, now: () => now });
    expect((await gate.acquire()).admitted).toBe(true);
    expect((await gate.acquire()).admitted).toBe(true);
    const refused = await gate.acquire();
    expect(refused).toEqual({ admitted: false, retryAfterMs: 100, reason: expect.stringMatching(/rate limit/) });
    now += 100; // one token at 10/s
    expect((await gate.acquire()).admitted).toBe(true);
    expect((await gate.acquire()).admitted).toBe(false);
  });

  it('wakes a waiter when the next token is due', async () => {
    const gate = new SendGate({ maxInFlight: 10, ratePerSecond: 50, burst: 1, maxWaitMs: 500 });
    expect((await gate.acquire()).admitted).toBe(true);
    const started = Date.now();
    expect((await gate.acquire()).admitted).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(10); // ~20 ms for one token at 50/s
  });

  it('drain refuses everyone waiting', async () => {
    const gate = new SendGate({ maxInFlight: 1, ratePerSecond: 0, maxWaitMs: 10_000 });
    await gate.acquire();
    const waiting = gate.acquire();
    gate.drain('closed');
    expect(await waiting).toEqual({ admitted: false, retryAfterMs: 0, reason: 'closed' });
  });
});
