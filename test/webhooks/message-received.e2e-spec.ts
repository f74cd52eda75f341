import { InboxPollerService } from '../../src/dlr/inbox-poller.service';
import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { bearer, createTenant, startTestApp, TestApp } from '../support/app';
import { waitFor } from '../support/wait';
import { Receiver } from './receiver';

/** message.received: an inbound SMS routed to a tenant reaches its webhook, signed, exactly once. */
describe('message.received webhooks', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let receiver: Receiver;

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { latencyMs: [0, 0] } });
    receiver = await new Receiver().start();
    t = await startTestApp({ WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_POLL_MS: '20' });
  });
  afterAll(async () => {
    await t.close();
    await sandbox.close();
    await receiver.stop();
  });

  it('an inbound SMS routed to the tenant is delivered as one signed message.received', async () => {
    const tenant = await createTenant(t, { baseUrl: sandbox.url });
    sandbox.addAccount({ username: tenant.providerAccount.username, password: 'provider-secret-pw', balance: '1000' });
    const put = await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url: receiver.url });
    expect(put.status).toBe(201);
    const secret = put.body.secret as string;

    const receivedAt = new Date(Math.floor(t.clock.now().getTime() / 1000) * 1000 - 5000);
    sandbox.addInbox(tenant.providerAccount.username, '6281234567890', 'STOP', receivedAt);
    const poller = t.app.get(InboxPollerService);
    await poller.pollDue();
    const [inbound] = (await t.http.get('/v1/inbound-messages').set(bearer(tenant.apiKey))).body.data;
    expect(inbound).toMatchObject({ from: '6281234567890', text: 'STOP' });

    const hooks = await waitFor(
      'message.received at the receiver',
      () => receiver.received.filter((h) => h.body.type === 'message.received'),
      (x) => x.length >= 1,
    );
    expect(hooks).toHaveLength(1);
    expect(Receiver.verify(hooks[0], secret)).toMatchObject({ type: 'message.received', data: inbound });

    // The same inbox row read again is a duplicate: no second event.
    t.clock.advance(120_000);
    await poller.pollDue();
    await new Promise((r) => setTimeout(r, 300));
    expect(receiver.received.filter((h) => h.body.type === 'message.received')).toHaveLength(1);
  });
});
