/**
 * Issue 7 item 10, chaos in the project's own suite (bounded: about a minute). Under load from two
 * tenants, with the sandbox rejecting some sends, answering some with HTTP 500 after taking them,
 * failing some numbers by DLR (52, refunded), duplicating and dropping some reports, the gateway
 * process is killed with SIGKILL twice (restarted each time on the same database) and PostgreSQL is
 * restarted once. Afterwards:
 *   - every accepted (202) message exists, in a legal state (nothing left queued or submitting);
 *   - the provider took at most one send per message, and every provider id we hold is one it issued;
 *   - one debit per message; every failed message refunded exactly once, nothing else refunded;
 *   - balance == sum(ledger) and balance >= 0 for every tenant.
 * The sandbox runs in this process: `sandbox.sent()` is what the provider received.
 */
import { sleep } from '../support/processes';
import { waitFor } from '../support/wait';
import { books, Rig } from '../support/rig';

const NUMBERS = ['081234567890', '081234567891', '08991234567', '08981234567']; // 22, 22, 52 (failed), 20→22

describe('chaos: two SIGKILLs of the gateway and a PostgreSQL restart under load', () => {
  let rig: Rig;
  let uncertainNeverSent: string[] | undefined;

  beforeAll(async () => {
    rig = await Rig.create({
      latencyMs: [1, 15],
      dlrDelayMs: [10, 200],
      htmlGarbageRate: 0.03, // rejected → failed/submit_rejected + refund
      http500AfterAcceptRate: 0.02, // taken, answered 500 → uncertain, never resent
      duplicateDlrRate: 0.1,
      dropDlrRate: 0.1,
    });
  }, 240_000);
  afterAll(async () => {
    await rig?.close();
  });

  const GATEWAY_ENV = {
    DISPATCH_BATCH_SIZE: '20',
    // 1 loop × 8 send slots: a SIGKILL can strand at most the 8 sends on the wire (issue 7 item 3)
    DISPATCH_LOOPS: '1',
    DISPATCH_CONCURRENCY: '8',
    DISPATCH_LEASE_MS: '3000', // a killed worker's claims settle as `uncertain` within seconds
    PROVIDER_TOTAL_TIMEOUT_MS: '2000',
    PROVIDER_CONNECT_TIMEOUT_MS: '1000',
    PROVIDER_BREAKER_HALF_OPEN_MS: '300',
  };

  it('every accepted message exists in a legal state, sent at most once, refunds exactly once, books balance', async () => {
    let gw = await rig.startGateway('gateway-1', GATEWAY_ENV);
    const tenants = [await rig.tenant('chaos-a', 5_000_000, 11), await rig.tenant('chaos-b', 3_000_000, 13)];

    const accepted = new Map<string, { tenant: number; text: string }>(); // message id → who and what
    const statuses: Record<string, number> = {};
    const fivexx: string[] = [];
    let n = 0;
    let loading = true;
    const worker = async (w: number) => {
      while (loading) {
        const ti = w % tenants.length;
        const batch = w % 2 === 0;
        const items = Array.from({ length: batch ? 5 : 1 }, () => {
          const i = n++;
          return { to: NUMBERS[i % NUMBERS.length], text: `chaos ${ti} #${i}` };
        });
        const r = batch
          ? await rig.http('POST', '/v1/messages/batch', { messages: items }, tenants[ti].apiKey)
          : await rig.http('POST', '/v1/messages', items[0], tenants[ti].apiKey);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (r.status === 202) {
          const list = batch
            ? (r.body!.accepted as { id: string; text: string }[])
            : [r.body as { id: string; text: string }];
          for (const m of list) accepted.set(m.id, { tenant: ti, text: m.text });
          if (batch) expect(r.body!.rejected).toEqual([]);
        } else {
          if (r.status >= 500 && r.status !== 503) fivexx.push(`${r.status} ${JSON.stringify(r.body)}`);
          await sleep(100);
        }
      }
    };
    const workers = Array.from({ length: 4 }, (_, w) => worker(w));
    const grow = (by: number, label: string) => {
      const from = accepted.size;
      return waitFor(
        label,
        () => accepted.size,
        (v) => v >= from + by,
        30_000,
        50,
      );
    };

    try {
      await grow(150, 'load on gateway-1');
      await gw.stop('SIGKILL');
      gw = await rig.startGateway('gateway-2', GATEWAY_ENV);
      await grow(150, 'load on gateway-2');
      await rig.pg.stop('immediate'); // a crash of the database server: recovery on start
      await sleep(1_500);
      await rig.pg.start();
      await waitFor(
        'ready after the database restart',
        () => rig.http('GET', '/health/ready'),
        (r) => r.status === 200,
        30_000,
      );
      await grow(150, 'load after the database restart');
      await gw.stop('SIGKILL');
      gw = await rig.startGateway('gateway-3', GATEWAY_ENV);
      await grow(150, 'load on gateway-3');
    } finally {
      loading = false;
      await Promise.all(workers);
      process.stdout.write(`chaos: answers ${JSON.stringify(statuses)}, ${accepted.size} accepted\n`);
      for (const g of rig.gateways) {
        const lines = g.output().split('\n');
        for (const line of lines)
          if (line.includes('unhandled error')) process.stdout.write(`chaos: ${g.name}: ${line.slice(0, 1500)}\n`);
        const conflicts = lines.filter((l) => l.includes('transaction conflict'));
        if (conflicts.length)
          process.stdout.write(
            `chaos: ${g.name}: ${conflicts.length} transaction conflicts (503), first: ${conflicts[0].slice(0, 300)}\n`,
          );
      }
    }
    expect(fivexx).toEqual([]);
    expect(gw.alive).toBe(true);

    // Settle: nothing queued or submitting (a killed worker's claims become `uncertain` after the lease).
    await waitFor(
      'the queue settled',
      async () =>
        (
          await rig.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM messages WHERE status IN ('queued', 'submitting')`,
          )
        )[0].n,
      (v) => v === 0,
      40_000,
      250,
    );
    await sleep(1_500); // the last reports of the sandbox (dlrDelayMs up to 200 ms per step)

    const rows = await rig.query<{
      id: string;
      tenant_id: string;
      text: string;
      status: string;
      provider_message_id: string | null;
      refunded: boolean;
      price: string;
      debits: number;
      refunds: number;
    }>(
      `SELECT 'msg_' || replace(m.id::text, '-', '') AS id, m.tenant_id, m.text, m.status, m.provider_message_id,
              m.refunded, m.price::text AS price,
              (SELECT count(*) FROM ledger_entries l WHERE l.message_id = m.id AND l.kind = 'debit')::int AS debits,
              (SELECT count(*) FROM ledger_entries l WHERE l.message_id = m.id AND l.kind = 'refund')::int AS refunds
         FROM messages m`,
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    const byStatus: Record<string, number> = {};
    for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    process.stdout.write(`chaos: ${rows.length} messages stored, states ${JSON.stringify(byStatus)}\n`);

    // Every accepted message exists, with what was accepted.
    const missing = [...accepted.keys()].filter((id) => !byId.has(id));
    expect(missing).toEqual([]);
    for (const [id, a] of accepted) expect(byId.get(id)!.text).toBe(a.text);

    // Legal states only.
    const illegal = rows.filter(
      (r) => !['submitted', 'pending', 'delivered', 'failed', 'uncertain'].includes(r.status),
    );
    expect(illegal).toEqual([]);

    // The provider took each message at most once, and every id we hold is one it issued for that text.
    const sent = rig.sandbox.sent();
    const sends = new Map<string, number>();
    for (const s of sent) sends.set(s.text, (sends.get(s.text) ?? 0) + 1);
    expect([...sends.entries()].filter(([, c]) => c > 1)).toEqual([]);
    const sentById = new Map(sent.map((s) => [s.id, s]));
    const wrongIds = rows.filter((r) => r.provider_message_id && sentById.get(r.provider_message_id)?.text !== r.text);
    expect(wrongIds).toEqual([]);
    // A message the gateway shows as accepted by the provider (submitted/pending/delivered) was taken by it.
    const claimedButNotSent = rows.filter(
      (r) => ['submitted', 'pending', 'delivered'].includes(r.status) && !sends.has(r.text),
    );
    expect(claimedButNotSent).toEqual([]);

    // Money: one debit per message; every failure refunded exactly once; nothing else refunded.
    expect(rows.filter((r) => r.debits !== 1)).toEqual([]);
    const badRefunds = rows.filter((r) =>
      r.status === 'failed' ? !(r.refunds === 1 && r.refunded) : r.refunds !== 0 || r.refunded,
    );
    expect(badRefunds).toEqual([]);
    expect(byStatus.failed ?? 0).toBeGreaterThan(0); // refunds did flow (52 numbers, rejected sends)
    for (const b of await books(rig)) {
      expect(b.balance).toBe(b.ledger);
      expect(Number(b.balance)).toBeGreaterThanOrEqual(0);
    }

    // Kept for the next test: uncertain messages the provider never took.
    uncertainNeverSent = rows.filter((r) => r.status === 'uncertain' && !sends.has(r.text)).map((r) => r.id);
    process.stdout.write(
      `chaos: ${byStatus.uncertain ?? 0} uncertain, of which ${uncertainNeverSent.length} never reached the provider\n`,
    );
  }, 180_000);

  // `uncertain` is shown as `submitted`, so it must be rare: a crash may strand only the sends that
  // were on the wire (claims are taken per free send slot, outcomes recorded as soon as known and
  // retried across a database restart). Two SIGKILLs of a process with 8 send slots: at most 16
  // uncertain messages the provider never took (before the fix: 62 uncertain, 10 never sent, in one run).
  it('a crash strands at most the sends in flight: uncertain-and-never-sent <= 2 kills x 8 slots', () => {
    expect(uncertainNeverSent).toBeDefined();
    expect(uncertainNeverSent!.length).toBeLessThanOrEqual(16);
  });
});
