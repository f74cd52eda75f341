import { HttpProviderClient } from '../../src/provider/client/http-provider-client';
import type { SendOutcome } from '../../src/provider/client/provider-client';
import { startSandbox, type SandboxHandle } from '../../src/sandbox/sandbox';
import { waitFor } from '../support/wait';
import { closedPort, sleep, startCallbackReceiver, type ReceivedCallback } from './support';

/**
 * DLR callbacks of the sandbox provider, received by a real HTTP server on 127.0.0.1: the form of
 * PROVIDER.md §3 and every DLR knob (duplicates, out of order, dropped, before the send answer).
 */

const PASSWORD = 'dlr-pass';
const NUMBER = '6281234567890';

let sandbox: SandboxHandle;
let receiver: Awaited<ReturnType<typeof startCallbackReceiver>>;
let client: HttpProviderClient;
let onCallback: ((cb: ReceivedCallback) => Promise<void> | void) | undefined;

beforeAll(async () => {
  receiver = await startCallbackReceiver((cb) => onCallback?.(cb));
  sandbox = await startSandbox({ seed: 7, knobs: { dlrDelayMs: [5, 15] } });
});

beforeEach(() => {
  sandbox.reset();
  receiver.received.length = 0;
  onCallback = undefined;
  sandbox.addAccount({
    username: 'dlr',
    password: PASSWORD,
    balance: '100000',
    callbackUrl: `${receiver.url}/v1/dlr/tok_abc?tenant=1`,
  });
  client = new HttpProviderClient(
    { accountId: 'pac_dlr', baseUrl: sandbox.url, username: 'dlr', password: PASSWORD, sendMethod: 'post' },
    { totalTimeoutMs: 2_000, sendRatePerSecond: Infinity },
  );
});

afterEach(async () => {
  await client.close();
});

afterAll(async () => {
  await sandbox.close();
  await receiver.close();
});

async function send(msisdn = NUMBER): Promise<string> {
  const outcome: SendOutcome = await client.send(msisdn, 'x');
  if (outcome.kind !== 'accepted') throw new Error(`send was ${outcome.kind}`);
  return outcome.providerMessageId;
}

const codesOf = (id: string) =>
  receiver.received.filter((cb) => cb.query.session_id === id).map((cb) => cb.query.error_code);

describe('DLR callbacks', () => {
  it('GET to the registered URL with session_id, error_code, error_message, msisdn (its own query kept)', async () => {
    const id = await send();
    const [cb] = await waitFor(
      'a callback',
      () => receiver.received.length === 1 && receiver.received,
      undefined,
      2_000,
    );
    expect(cb.path).toBe('/v1/dlr/tok_abc');
    expect(cb.query).toEqual({
      tenant: '1',
      session_id: id,
      error_code: '22',
      error_message: 'Delivered',
      msisdn: NUMBER,
    });
    // The sandbox records the receiver's answer once it has read it, a moment after the receiver saw the request.
    await waitFor('the callback answer', () => sandbox.callbacks()[0]?.httpStatus, undefined, 2_000);
    expect(sandbox.callbacks()).toEqual([
      expect.objectContaining({ sessionId: id, code: 22, httpStatus: 200, target: `${receiver.url}/v1/dlr/tok_abc` }),
    ]);
  });

  it.each([
    ['6289912345678', ['52'], 'No Charge'],
    ['6289812345678', ['20', '22'], 'Delivered'],
  ])('%s reports %p', async (msisdn, codes, lastMessage) => {
    const id = await send(msisdn);
    await waitFor('callbacks', () => codesOf(id).length === codes.length, undefined, 2_000);
    expect(codesOf(id)).toEqual(codes);
    expect(receiver.received.at(-1)?.query.error_message).toBe(lastMessage);
  });

  it('lapsed account: 51 Expiration Period', async () => {
    sandbox.addAccount({
      username: 'dlr',
      password: PASSWORD,
      balance: '100',
      expiresAt: new Date(Date.now() - 1_000),
      callbackUrl: `${receiver.url}/dlr`,
    });
    const id = await send();
    await waitFor('a callback', () => codesOf(id).length === 1, undefined, 2_000);
    expect(receiver.received[0].query).toMatchObject({ error_code: '51', error_message: 'Expiration Period' });
  });

  it('duplicateDlrRate: the same report arrives twice', async () => {
    sandbox.setKnobs({ duplicateDlrRate: 1 });
    const id = await send();
    await waitFor('two callbacks', () => codesOf(id).length === 2, undefined, 2_000);
    expect(codesOf(id)).toEqual(['22', '22']);
    expect(sandbox.callbacks().map((c) => c.duplicate)).toEqual([false, true]);
  });

  it('outOfOrderDlr: 22 first, then a stale 20; report.php still says 22', async () => {
    sandbox.setKnobs({ outOfOrderDlr: 1 });
    const id = await send();
    await waitFor('two callbacks', () => codesOf(id).length === 2, undefined, 2_000);
    expect(codesOf(id)).toEqual(['22', '20']);
    expect(await client.report(id)).toMatchObject({ kind: 'report', code: 22 });
  });

  it('outOfOrderDlr on a 20→22 message swaps them', async () => {
    sandbox.setKnobs({ outOfOrderDlr: 1 });
    const id = await send('6289812345678');
    await waitFor('two callbacks', () => codesOf(id).length === 2, undefined, 2_000);
    expect(codesOf(id)).toEqual(['22', '20']);
  });

  it('dropDlrRate: no callback at all, only report.php knows', async () => {
    sandbox.setKnobs({ dropDlrRate: 1 });
    const id = await send();
    await sleep(100); // several times the DLR delay
    expect(receiver.received).toHaveLength(0);
    expect(await client.report(id)).toMatchObject({ kind: 'report', code: 22, text: 'Delivered' });
  });

  it('dlrBeforeSendAnswer: the callback is answered before the send answer is written', async () => {
    sandbox.setKnobs({ dlrBeforeSendAnswer: 1, dlrDelayMs: [500, 500] });
    let sendSettled = false;
    const seenBeforeAnswer: boolean[] = [];
    onCallback = async () => {
      seenBeforeAnswer.push(!sendSettled);
      await sleep(50); // the sandbox waits for this answer before answering the send
    };
    const started = performance.now();
    const pending = send().then((id) => ((sendSettled = true), id));
    const id = await pending;
    expect(performance.now() - started).toBeGreaterThanOrEqual(45);
    expect(codesOf(id)).toEqual(['22']);
    expect(seenBeforeAnswer).toEqual([true]);
  });

  it('a failing receiver is recorded, not retried', async () => {
    sandbox.setCallbackUrl('dlr', `http://127.0.0.1:${await closedPort()}/unreachable`);
    const id = await send();
    await waitFor(
      'a failed attempt',
      () => sandbox.callbacks().length === 1 && sandbox.callbacks()[0].error,
      undefined,
      2_000,
    );
    await sleep(50);
    expect(sandbox.callbacks()).toEqual([expect.objectContaining({ sessionId: id, error: expect.any(String) })]);
  });

  it('no callback URL: no callback, the report is still known', async () => {
    sandbox.setCallbackUrl('dlr', undefined);
    const id = await send();
    await sleep(60);
    expect(sandbox.callbacks()).toHaveLength(0);
    expect(await client.report(id)).toMatchObject({ code: 22 });
  });
});
