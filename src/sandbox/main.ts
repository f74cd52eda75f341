import { pino } from 'pino';
import { parseArgs, type SandboxCliConfig } from './sandbox-cli';
import { startSandbox } from './sandbox';

/** `npm run sandbox` (node dist/src/sandbox/main.js): flags and env are described in sandbox-cli.ts and docs/provider.md. */
async function main(): Promise<void> {
  const logger = pino({ name: 'gerbang-sandbox', level: 'info' });
  let config: SandboxCliConfig;
  try {
    config = parseArgs(process.argv.slice(2), process.env);
  } catch (err) {
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'sandbox: bad configuration');
    process.exitCode = 2;
    return;
  }
  logger.level = config.logLevel;
  if (!['127.0.0.1', '::1', 'localhost'].includes(config.host)) {
    logger.warn(
      { host: config.host },
      'sandbox: listening beyond loopback; its /_sandbox admin API has no authentication',
    );
  }
  const sandbox = await startSandbox({
    port: config.port,
    host: config.host,
    accounts: config.accounts,
    knobs: config.knobs,
    seed: config.seed,
    logger,
  });
  logger.info(
    {
      url: sandbox.url,
      admin: sandbox.url.replace(/\/masking$/, '/_sandbox'),
      accounts: config.accounts.map((a) => a.username),
    },
    'sandbox: ready',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'sandbox: shutting down');
    sandbox.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
    setTimeout(() => process.exit(1), 5_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
