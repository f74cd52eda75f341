import { spawn } from 'node:child_process';
import { request } from 'undici';
import { startSandbox, type SandboxHandle } from '../../src/sandbox/sandbox';
import { waitFor } from '../support/wait';

/**
 * The sandbox provider itself, over plain HTTP (no client): the wire format of PROVIDER.md, the
 * admin API that drives a separately running sandbox, and the standalone entry point.
 */

let sandbox: SandboxHandle;
let origin: string;

beforeAll(async () => {
  sandbox = await startSandbox({
    seed: 1,
    accounts: [{ username: 'u', password: 'p', balance: '1000', expiresAt: new Date('2099-02-25T03:00:00.000Z') }],
  });
  origin = sandbox.url.replace(/\/masking$/, '');
});

afterEach(() => sandbox.reset());

afterAll(async () => {
  await sandbox.close();
});

async function get(path: string): Promise<{ status: number; body: string; type: string }> {
  const res = await request(`${origin}${path}`);
  return { status: res.statusCode, body: await res.body.text(), type: String(res.headers['content-type']) };
}

async function post(
  path: string,
  body: string,
  type = 'application/x-www-form-urlencoded',
): Promise<{ status: number; body: string }> {
  const res = await request(`${origin}${path}`, { method: 'POST', body, headers: { 'content-type': type } });
  return { status: res.statusCode, body: await res.body.text() };
}

describe('sandbox wire format', () => {
  it('listens on 127.0.0.1 and serves the API under /masking', () => {
    expect(sandbox.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/masking$/);
  });

  it('send.php (GET) answers a bare id with a newline; send_post.php reads the form body', async () => {
    const a = await get('/masking/send.php?username=u&password=p&hp=6281234567890&message=hi%20there');
    expect(a).toMatchObject({ status: 200, body: expect.stringMatching(/^\d+\n$/) });
    const b = await post('/masking/send_post.php', 'username=u&password=p&hp=6281234567890&message=hi+there');
    expect(Number(b.body)).toBe(Number(a.body) + 1);
    expect(sandbox.sent().map((m) => m.text)).toEqual(['hi there', 'hi there']);
  });

  it('like PHP, each script reads only its own half ($_GET or $_POST)', async () => {
    expect((await post('/masking/send.php', 'username=u&password=p&hp=6281234567890&message=x')).body).toBe(
      'Parameter tidak lengkap',
    );
    expect((await get('/masking/send_post.php?username=u&password=p&hp=6281234567890&message=x')).body).toBe(
      'Parameter tidak lengkap',
    );
    expect(sandbox.sent()).toHaveLength(0);
  });

  it('balance.php: `<decimal>, YYYY/MM/DD-HH:mm:ss` in Jakarta time; wrong credentials free text', async () => {
    expect((await get('/masking/balance.php?username=u&password=p')).body).toBe('1000, 2099/02/25-10:00:00');
    expect((await get('/masking/balance.php?username=u&password=x')).body).toBe('Username atau Password salah');
  });

  it('report.php: Success Send until the first DLR; empty for an unknown id', async () => {
    sandbox.setKnobs({ dlrDelayMs: [10_000, 10_000] });
    const id = (await get('/masking/send.php?username=u&password=p&hp=6281234567890&message=x')).body.trim();
    expect((await get(`/masking/report.php?rpt=${id}`)).body).toBe('Success Send');
    expect((await get('/masking/report.php?rpt=1')).body).toBe('');
  });

  it('reports_post.php: a CSV attachment; a bad date is refused', async () => {
    await get('/masking/send.php?username=u&password=p&hp=6281234567890&message=x');
    const res = await request(`${origin}/masking/reports_post.php`, {
      method: 'POST',
      body: 'username=u&password=p&start=01-01-2020&end=31-12-2099&download_report_button=Download',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.headers['content-type']).toMatch(/text\/csv/);
    expect(res.headers['content-disposition']).toMatch(/attachment/);
    const lines = (await res.body.text()).split('\r\n');
    expect(lines[0]).toBe('id,msisdn,message,sent_at,sms_count,price,status_code,status');
    expect(lines).toHaveLength(3); // header, one row, final empty string
    expect((await post('/masking/reports_post.php', 'username=u&password=p&start=2020-01-01&end=x')).body).toMatch(
      /Format tanggal/,
    );
  });

  it('unknown scripts 404 like the web server would', async () => {
    expect((await get('/masking/nope.php')).status).toBe(404);
    expect((await get('/elsewhere')).status).toBe(404);
  });
});

describe('sandbox admin API', () => {
  it('knobs: read, change, refuse nonsense', async () => {
    expect(JSON.parse((await get('/_sandbox/knobs')).body)).toMatchObject({ http500Rate: 0, latencyMs: [0, 0] });
    const changed = await post(
      '/_sandbox/knobs',
      JSON.stringify({ http500Rate: 1, outOfOrderDlr: true }),
      'application/json',
    );
    expect(JSON.parse(changed.body)).toMatchObject({ http500Rate: 1, outOfOrderDlr: 1 });
    expect(sandbox.knobs().http500Rate).toBe(1);
    expect((await get('/masking/send.php?username=u&password=p&hp=6281234567890&message=x')).status).toBe(500);
    expect((await post('/_sandbox/knobs', JSON.stringify({ http500Rate: 7 }), 'application/json')).status).toBe(400);
    expect((await post('/_sandbox/knobs', 'not json', 'application/json')).status).toBe(400);
  });

  it('accounts, callback URL, top-up and inbox; listings never show a password', async () => {
    const created = await post(
      '/_sandbox/accounts',
      JSON.stringify({ username: 'n', password: 'secret-n', balance: '50.5', pricePerSms: '10' }),
      'application/json',
    );
    expect(created.status).toBe(201);
    expect(JSON.parse(created.body)).toMatchObject({ username: 'n', balance: '50.50', pricePerSms: '10' });
    expect(
      (
        await post(
          '/_sandbox/callback',
          JSON.stringify({ username: 'n', url: 'http://127.0.0.1:9/dlr' }),
          'application/json',
        )
      ).status,
    ).toBe(200);
    expect(
      JSON.parse(
        (await post('/_sandbox/topup', JSON.stringify({ username: 'n', amount: '10' }), 'application/json')).body,
      ),
    ).toMatchObject({ balance: '60.50' });
    expect(
      (
        await post(
          '/_sandbox/inbox',
          JSON.stringify({ username: 'n', msisdn: '62811', text: 'hai' }),
          'application/json',
        )
      ).status,
    ).toBe(201);
    expect((await get('/masking/inbox.php?username=n&password=secret-n')).body).toMatch(
      /^id,msisdn,message,received_at\r\n1,62811,hai,/,
    );
    const listing = (await get('/_sandbox/accounts')).body;
    expect(JSON.parse(listing)).toEqual(
      expect.arrayContaining([expect.objectContaining({ username: 'n', callbackUrl: 'http://127.0.0.1:9/dlr' })]),
    );
    expect(listing).not.toContain('secret-n');
    expect((await post('/_sandbox/accounts', JSON.stringify({ username: 'x' }), 'application/json')).status).toBe(400);
    expect(
      (
        await post(
          '/_sandbox/accounts',
          JSON.stringify({ username: 'x', password: 'y', balance: '1', expiresAt: 'soon' }),
          'application/json',
        )
      ).status,
    ).toBe(400);
    expect(
      (
        await post(
          '/_sandbox/accounts',
          JSON.stringify({ username: 'x', password: 'y', balance: '1.234' }),
          'application/json',
        )
      ).status,
    ).toBe(400);
    expect(
      (await post('/_sandbox/topup', JSON.stringify({ username: 'ghost', amount: '1' }), 'application/json')).status,
    ).toBe(400);
  });

  it('sent lists every taken message; reset clears it and keeps ids increasing', async () => {
    const first = (await get('/masking/send.php?username=u&password=p&hp=6281234567890&message=one')).body.trim();
    const sent = JSON.parse((await get('/_sandbox/sent')).body) as Array<{ id: string; text: string }>;
    expect(sent).toEqual([expect.objectContaining({ id: first, text: 'one', username: 'u', msisdn: '6281234567890' })]);
    expect((await post('/_sandbox/reset', '', 'application/json')).status).toBe(200);
    expect(JSON.parse((await get('/_sandbox/sent')).body)).toEqual([]);
    const second = (await get('/masking/send.php?username=u&password=p&hp=6281234567890&message=two')).body.trim();
    expect(Number(second)).toBeGreaterThan(Number(first));
  });
});

describe('sandbox message ids across restarts', () => {
  it('a restarted sandbox never hands out an id an earlier run issued (ids stay unique per account)', async () => {
    const spec = { username: 'r', password: 'p', balance: '100000' };
    const send = async (s: SandboxHandle) => {
      const res = await request(`${s.url}/send_post.php`, {
        method: 'POST',
        body: 'username=r&password=p&hp=6281234567890&message=x',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      return (await res.body.text()).trim();
    };
    const first = await startSandbox({ accounts: [spec] });
    const before = [await send(first), await send(first), await send(first)];
    await first.close();
    const second = await startSandbox({ accounts: [spec] });
    const after = [await send(second), await send(second)];
    await second.close();
    for (const id of [...before, ...after]) expect(id).toMatch(/^\d+$/);
    expect(after.filter((id) => before.includes(id))).toEqual([]);
    // Still increasing across the restart (the provider's ids are numeric and grow).
    expect(BigInt(after[0]) > BigInt(before[2])).toBe(true);
  });
});

describe('standalone entry (src/sandbox/main.ts)', () => {
  it('starts on 127.0.0.1 from env, logs JSON, serves the accounts, stops on SIGTERM with exit code 0', async () => {
    const child = spawn(process.execPath, ['-r', 'ts-node/register', 'src/sandbox/main.ts', '--port', '0'], {
      env: {
        ...process.env,
        TS_NODE_TRANSPILE_ONLY: '1',
        TS_NODE_PROJECT: 'tsconfig.json',
        SANDBOX_ACCOUNTS: 'cli:clipass:250.25',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    try {
      const ready = await waitFor(
        'the sandbox to start',
        () =>
          stdout
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { msg: string; url?: string })
            .find((l) => l.msg === 'sandbox: ready'),
        undefined,
        20_000,
      );
      expect(ready.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/masking$/);
      const res = await request(`${ready.url}/balance.php?username=cli&password=clipass`);
      expect(await res.body.text()).toMatch(/^250\.25, \d{4}\/\d{2}\/\d{2}-\d{2}:\d{2}:\d{2}$/);
    } finally {
      const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
    }
    expect(stdout).toMatch(/"msg":"sandbox: shutting down"/);
  }, 30_000);
});
