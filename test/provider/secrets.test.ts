import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { pino, type Logger } from 'pino';
import { register } from 'prom-client';
import { HttpProviderClient } from '../../src/provider/client/http-provider-client';
import type { ProviderAccountConfig } from '../../src/provider/client/provider-client';
import { REDACTED } from '../../src/provider/client/redact';
import { startSandbox, type SandboxHandle } from '../../src/sandbox/sandbox';
import { closedPort } from './support';

/**
 * A failing run (wrong credentials, a debug page that dumps the request, HTTP 500, refused
 * connection, blackhole timeout, in POST and GET mode, every operation) with everything captured:
 * every log line, every returned value, every thrown error (message, stack, inspect, JSON) and the
 * metrics. The password must appear nowhere, in any encoding a request can carry it.
 */

// Characters that URL/form encoding changes, so every encoded variant differs from the raw one.
const SECRET = 'Zx9!s3cr3t pass&word=+%/ü';
const VARIANTS = [SECRET, encodeURIComponent(SECRET), new URLSearchParams({ p: SECRET }).toString().slice(2)];

let sandbox: SandboxHandle;
let logLines: string[];
let logger: Logger;

beforeAll(async () => {
  // The sandbox account's real password differs: every authenticated call fails ("wrong credentials").
  sandbox = await startSandbox({
    seed: 3,
    accounts: [{ username: 'acme', password: 'the-real-one', balance: '1000' }],
  });
});

afterAll(async () => {
  await sandbox.close();
});

beforeEach(() => {
  logLines = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logLines.push(chunk.toString('utf8'));
      done();
    },
  });
  logger = pino({ level: 'trace' }, sink);
});

function captureError(err: unknown): string {
  const e = err as Error;
  return [String(e), e?.message, e?.stack, inspect(err, { depth: 10, showHidden: true }), JSON.stringify(err)].join(
    '\n',
  );
}

async function failingRun(config: ProviderAccountConfig, totalTimeoutMs = 150): Promise<string[]> {
  const client = new HttpProviderClient(config, {
    logger,
    totalTimeoutMs,
    connectTimeoutMs: 500,
    sendRatePerSecond: Infinity,
  });
  const captured: string[] = [];
  const keep = async (op: () => Promise<unknown>) => {
    try {
      const value = await op();
      captured.push(JSON.stringify(value), inspect(value, { depth: 10 }));
    } catch (err) {
      captured.push(captureError(err));
    }
  };
  try {
    await keep(() => client.send('6281234567890', 'rahasia teks'));
    await keep(() => client.report('18319370'));
    await keep(() => client.balance());
    await keep(() => client.downloadReport(new Date(), new Date()));
    await keep(() => client.inbox());
  } finally {
    await client.close();
  }
  return captured;
}

function expectNoSecret(texts: string[]): void {
  for (const text of texts) for (const variant of VARIANTS) expect(text).not.toContain(variant);
}

describe('the provider password never leaks', () => {
  it.each(['post', 'get'] as const)(
    '%s mode: wrong credentials, debug dump, 500, refused, blackhole',
    async (sendMethod) => {
      const config: ProviderAccountConfig = {
        accountId: 'pac_secret',
        baseUrl: sandbox.url,
        username: 'acme',
        password: SECRET,
        sendMethod,
      };
      const captured: string[] = [];

      captured.push(...(await failingRun(config))); // wrong credentials
      sandbox.setKnobs({ htmlGarbageRate: 1 });
      const dump = await failingRun(config); // a PHP page that echoes the request, password included
      captured.push(...dump);
      sandbox.setKnobs({ htmlGarbageRate: 0, http500Rate: 1 });
      captured.push(...(await failingRun(config)));
      sandbox.setKnobs({ http500Rate: 0, blackholeRate: 1 });
      captured.push(...(await failingRun({ ...config, username: 'acme' }, 100)));
      sandbox.setKnobs({ blackholeRate: 0, latencyMs: [300, 300] }); // timeouts of the non-send operations
      captured.push(...(await failingRun(config, 100)));
      sandbox.reset();
      captured.push(...(await failingRun({ ...config, baseUrl: `http://127.0.0.1:${await closedPort()}/masking` })));

      // The run really went through the failure paths, and the password really was in what came back.
      const all = captured.join('\n');
      expect(all).toMatch(/"kind":"rejected"/);
      expect(all).toMatch(/"kind":"uncertain"/);
      expect(all).toMatch(/"kind":"notSent"/);
      expect(all).toMatch(/ProviderError/);
      expect(dump.join('\n')).toContain(REDACTED);
      expect(logLines.join('')).toMatch(/"accountId":"pac_secret"/);
      expect(logLines.some((l) => /send (rejected|uncertain|notSent)/.test(l))).toBe(true);

      expectNoSecret(captured);
      expectNoSecret(logLines);
      expectNoSecret([await register.metrics()]);
      // Nor the message text in the logs.
      expect(logLines.join('')).not.toContain('rahasia teks');
    },
  );
});
