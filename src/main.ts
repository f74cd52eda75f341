import 'reflect-metadata';
import { ConfigError, loadConfig } from './config/config';
import { startEmbeddedPostgres, EmbeddedDatabase } from './database/embedded';
import { createApp } from './app.factory';
import { seedSandbox } from './sandbox-mode/seed';

/** A JSON log line before the app's logger exists (and after it is gone). */
function log(level: 'info' | 'error', msg: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ level, time: Date.now(), msg, ...extra }) + '\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }

  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    embedded = await startEmbeddedPostgres(config.dataDir, (msg) => log('info', msg));
    databaseUrl = embedded.url;
    log('info', 'embedded PostgreSQL started', { dataDir: config.dataDir });
  }

  const app = await createApp({ ...config, databaseUrl });
  let sandboxBanner: string[] = [];
  if (config.sandbox) sandboxBanner = await seedSandbox(app, config);

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log('info', 'shutting down', { signal });
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    try {
      await app.close();
    } finally {
      if (embedded) await embedded.stop().catch(() => undefined);
      log('info', 'stopped');
      process.exit(0);
    }
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));

  await app.listen(config.port, config.host);
  const base = `http://localhost:${config.port}`;
  log('info', 'gerbang listening', { port: config.port, docs: `${base}/docs`, startupMs: Date.now() - started });
  for (const line of sandboxBanner) process.stdout.write(line + '\n');
}

main().catch((e: unknown) => {
  log('error', 'failed to start', { err: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});
