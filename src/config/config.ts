import bytes from 'bytes';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Machine, resolveWorkers, thisMachine } from './workers';

/**
 * The gateway's configuration: the one place that reads `process.env` (see API.md "Environment").
 * `loadConfig` validates every value and throws a ConfigError listing all problems; `main.ts`
 * prints it and exits non-zero.
 */
export interface AppConfig {
  nodeEnv: string;
  production: boolean;
  port: number;
  host: string;
  /** undefined: start an embedded PostgreSQL under `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  publicBaseUrl: string;
  jwtSecret: string;
  jwtExpiresInSeconds: number;
  /** 32 bytes, AES-256-GCM key for provider passwords and webhook secrets. */
  encryptionKey: Buffer;
  adminEmail: string | undefined;
  adminPassword: string | undefined;
  webhookAllowPrivate: boolean;
  sandbox: boolean;
  logLevel: string;
  /** Largest JSON body, in bytes (`BODY_LIMIT`, e.g. `1mb`). */
  bodyLimit: number;
  dbPoolSize: number;
  /** Gateway processes (Node cluster) sharing the port; > 1 needs DATABASE_URL. `WORKERS`, default auto (workers.ts). */
  workers: number;
  /** How `workers` was decided, for the startup log. */
  workersReason: string;
  /** Port tried first for the embedded PostgreSQL (a taken one falls back to a free port). */
  embeddedPgPort: number;
  /**
   * How long SIGTERM waits before the process exits anyway: a send on the wire may take the
   * provider's total timeout, then it is recorded and the pool closes (SHUTDOWN_MARGIN_MS).
   * docker-compose.yml's stop_grace_period is longer than this for the default timeout.
   */
  shutdownTimeoutMs: number;
  dispatcher: {
    /** Run the submit workers in this process. */
    enabled: boolean;
    /** With `concurrency`: a process has loops × concurrency send slots (sends on the wire at once). */
    loops: number;
    /** Most messages one claim takes (a claim never takes more than the free send slots). */
    batchSize: number;
    /** Send slots per loop (see `loops`). */
    concurrency: number;
    /** Idle poll interval (an accepted message wakes the loops at once in its own process). */
    pollMs: number;
    /**
     * A claim older than this is presumed dead (crashed worker): the message becomes `uncertain`.
     * At least PROVIDER_TOTAL_TIMEOUT_MS + 1 s; a live worker also renews its leases every third of it.
     */
    leaseMs: number;
    /** notSent attempts before `failed/submit_failed`. */
    maxAttempts: number;
  };
  provider: {
    connectTimeoutMs: number;
    totalTimeoutMs: number;
    maxInFlight: number;
    /** 0 = no limit. */
    sendRatePerSecond: number;
    breakerThreshold: number;
    breakerHalfOpenMs: number;
    /** PROVIDER_BALANCE_POLL_SECONDS: how often each active account's balance.php is read. */
    balancePollSeconds: number;
    /** Default low-balance alert threshold of an account without its own (0 = alert only when empty). */
    lowBalanceThreshold: number;
  };
  inbox: {
    /** INBOX_POLL_SECONDS: how often each provider account's inbox.php is read. */
    pollSeconds: number;
  };
  dlr: {
    /** DLR_POLL_AFTER_SECONDS: a submitted message without a final report is polled (report.php) after this long. */
    pollAfterSeconds: number;
    /** RECONCILE_AFTER_SECONDS: an `uncertain` submit is looked up in reports_post.php after this long (and again as long later). */
    reconcileAfterSeconds: number;
    /** DLR_REAPPLY_SECONDS: how often stored reports still unapplied (their apply failed) are applied again. */
    reapplySeconds: number;
  };
  /**
   * RETENTION_MONTHS: months of messages, message events and delivery reports kept (whole UTC months,
   * dropped by partition); null (`0` or `off`) = never dropped. The ledger is never dropped.
   */
  retentionMonths: number | null;
  webhooks: {
    /** Run the webhook delivery worker and the message-status relay in this process. */
    enabled: boolean;
    /** Webhook requests in flight per process. */
    concurrency: number;
    /** Requests in flight per tenant endpoint, over all processes (a slow endpoint holds only these). */
    perEndpoint: number;
    /** Total time one webhook request may take (connect, headers, body). */
    timeoutMs: number;
    /** Idle poll interval of the delivery worker and of the relay. */
    pollMs: number;
  };
  /** Usage exports (`GET /v1/usage`, `GET /v1/admin/usage`; docs/billing.md "Usage"). */
  usageExport: {
    /**
     * USAGE_EXPORT_STALL_SECONDS: an export whose client has taken nothing of a full socket buffer for this
     * long is cut, and its transaction and pooled connection released.
     */
    stallSeconds: number;
    /** USAGE_EXPORT_CONCURRENCY: exports streaming at once in this process (each holds a pooled connection). */
    concurrency: number;
  };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

type Env = Record<string, string | undefined>;

/** A dispatch lease outlasts the longest send by at least this (the claim, the recording). */
export const LEASE_MARGIN_MS = 1000;
/** After the longest send: recording its outcome, closing HTTP and the pool. */
export const SHUTDOWN_MARGIN_MS = 10_000;
/**
 * Default of USAGE_EXPORT_STALL_SECONDS: a client that reads at all drains a socket buffer in well under a
 * second, so 30 s without a drain is a client that stopped reading (docs/billing.md "Usage").
 */
export const USAGE_EXPORT_STALL_SECONDS = 30;
/** Default of USAGE_EXPORT_CONCURRENCY: exports hold at most this share of the pool (1/4: 5 of DB_POOL_SIZE 20). */
export const USAGE_EXPORT_POOL_DIVISOR = 4;

function parseBool(name: string, raw: string | undefined, fallback: boolean, problems: string[]): boolean {
  if (raw === undefined || raw === '') return fallback;
  const v = raw.trim().toLowerCase();
  if (['true', '1', 'yes'].includes(v)) return true;
  if (['false', '0', 'no'].includes(v)) return false;
  problems.push(`${name} must be true or false, got "${raw}"`);
  return fallback;
}

/**
 * RETENTION_MONTHS: default 13 (a year of statements and usage, plus the month in progress); `0` or `off`
 * keeps everything. At least 3: a message is final at most ~40 days after its accept (35 days scheduled
 * ahead, 72 h of reports), and usage of the last two months needs its messages.
 */
export function parseRetention(raw: string | undefined, problems: string[]): number | null {
  if (raw === undefined || raw.trim() === '') return 13;
  const v = raw.trim().toLowerCase();
  if (v === 'off' || v === '0') return null;
  if (!/^\d+$/.test(v) || Number(v) < 3 || Number(v) > 1200) {
    problems.push(
      `RETENTION_MONTHS must be 0 or off (keep everything) or a whole number of months from 3 to 1200, got "${raw}"`,
    );
    return 13;
  }
  return Number(v);
}

function parseIntIn(
  name: string,
  raw: string | undefined,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
): number {
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    problems.push(`${name} must be an integer, got "${raw}"`);
    return fallback;
  }
  const n = Number(raw.trim());
  if (n < min || n > max) {
    problems.push(`${name} must be between ${min} and ${max}, got ${n}`);
    return fallback;
  }
  return n;
}

/**
 * In development, JWT_SECRET and ENCRYPTION_KEY are generated on first start and stored under the
 * data directory, so restarts keep tokens and encrypted passwords valid.
 */
function devSecret(dataDir: string, file: string, make: () => string): string {
  const path = join(dataDir, file);
  if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  const value = make();
  writeFileSync(path, value + '\n', { mode: 0o600 });
  return value;
}

export function loadConfig(env: Env = process.env, machine: () => Machine = thisMachine): AppConfig {
  const problems: string[] = [];
  const nodeEnv = env.NODE_ENV || 'development';
  const production = nodeEnv === 'production';
  const port = parseIntIn('PORT', env.PORT, 3000, 0, 65535, problems);
  const dataDir = env.DATA_DIR || join(process.cwd(), '.data');

  let databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl) {
    try {
      const u = new URL(databaseUrl);
      if (!['postgres:', 'postgresql:'].includes(u.protocol)) problems.push('DATABASE_URL must be a postgres:// URL');
    } catch {
      problems.push('DATABASE_URL is not a valid URL');
      databaseUrl = undefined;
    }
  }

  let publicBaseUrl = (env.PUBLIC_BASE_URL || `http://localhost:${port}`).replace(/\/+$/, '');
  try {
    const u = new URL(publicBaseUrl);
    if (!['http:', 'https:'].includes(u.protocol)) problems.push('PUBLIC_BASE_URL must be http(s)');
    // Every DLR callback URL is `<PUBLIC_BASE_URL>/v1/dlr/<token>`: after a query or a fragment the token's path
    // would be part of them (the provider's callbacks would miss the route); credentials would be shown in every
    // provider account's dlrCallbackUrl. (Not echoed: the value may hold a password.)
    else if (u.search || u.hash || publicBaseUrl.includes('?') || publicBaseUrl.includes('#'))
      problems.push('PUBLIC_BASE_URL must not carry a query or a fragment');
    else if (u.username || u.password) problems.push('PUBLIC_BASE_URL must not carry credentials');
  } catch {
    problems.push('PUBLIC_BASE_URL is not a valid URL');
    publicBaseUrl = `http://localhost:${port}`;
  }

  if (production && !env.JWT_SECRET) problems.push('JWT_SECRET is required when NODE_ENV=production');
  if (production && !env.ENCRYPTION_KEY) problems.push('ENCRYPTION_KEY is required when NODE_ENV=production');
  if (env.JWT_SECRET !== undefined && env.JWT_SECRET.length > 0 && env.JWT_SECRET.length < 32) {
    problems.push('JWT_SECRET must be at least 32 characters');
  }

  let encryptionKey = Buffer.alloc(32);
  const rawKey = env.ENCRYPTION_KEY || (production ? undefined : undefined);
  if (rawKey) {
    const buf = Buffer.from(rawKey, 'base64');
    if (buf.length !== 32)
      problems.push('ENCRYPTION_KEY must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)');
    else encryptionKey = buf;
  }

  const webhookAllowPrivate = parseBool('WEBHOOK_ALLOW_PRIVATE', env.WEBHOOK_ALLOW_PRIVATE, false, problems);
  // Never on by default in production: an image started without DATABASE_URL must not seed a demo
  // tenant with credit and an API key. Production turns it on only by saying SANDBOX=true.
  const sandbox = parseBool('SANDBOX', env.SANDBOX, databaseUrl === undefined && !production, problems);
  const jwtExpiresInSeconds = parseIntIn(
    'JWT_EXPIRES_IN_SECONDS',
    env.JWT_EXPIRES_IN_SECONDS,
    3600,
    60,
    7 * 86400,
    problems,
  );
  const dbPoolSize = parseIntIn('DB_POOL_SIZE', env.DB_POOL_SIZE, 20, 1, 500, problems);
  const logLevel = env.LOG_LEVEL || (nodeEnv === 'test' ? 'warn' : 'info');
  if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(logLevel)) {
    problems.push(`LOG_LEVEL must be one of fatal,error,warn,info,debug,trace,silent`);
  }
  if (env.ADMIN_EMAIL && !/^[^\s@]+@[^\s@]+$/.test(env.ADMIN_EMAIL))
    problems.push('ADMIN_EMAIL is not an email address');
  if (env.ADMIN_EMAIL && !env.ADMIN_PASSWORD) problems.push('ADMIN_PASSWORD is required with ADMIN_EMAIL');
  if (env.ADMIN_PASSWORD && env.ADMIN_PASSWORD.length < 8)
    problems.push('ADMIN_PASSWORD must be at least 8 characters');

  const int = (name: string, fallback: number, min: number, max: number) =>
    parseIntIn(name, env[name], fallback, min, max, problems);
  const dispatcher = {
    enabled: parseBool('DISPATCHER', env.DISPATCHER, true, problems),
    loops: int('DISPATCH_LOOPS', 2, 1, 64),
    batchSize: int('DISPATCH_BATCH_SIZE', 200, 1, 5000),
    concurrency: int('DISPATCH_CONCURRENCY', 50, 1, 1000),
    pollMs: int('DISPATCH_POLL_MS', 250, 10, 60_000),
    leaseMs: int('DISPATCH_LEASE_MS', 120_000, 1000, 86_400_000),
    maxAttempts: int('DISPATCH_MAX_ATTEMPTS', 5, 1, 100),
  };
  const provider = {
    connectTimeoutMs: int('PROVIDER_CONNECT_TIMEOUT_MS', 10_000, 100, 600_000),
    totalTimeoutMs: int('PROVIDER_TOTAL_TIMEOUT_MS', 30_000, 100, 600_000),
    maxInFlight: int('PROVIDER_MAX_IN_FLIGHT', 50, 1, 10_000),
    sendRatePerSecond: int('PROVIDER_SEND_RATE_PER_SECOND', 100, 0, 1_000_000),
    breakerThreshold: int('PROVIDER_BREAKER_THRESHOLD', 5, 1, 1000),
    breakerHalfOpenMs: int('PROVIDER_BREAKER_HALF_OPEN_MS', 30_000, 100, 3_600_000),
    balancePollSeconds: int('PROVIDER_BALANCE_POLL_SECONDS', 900, 10, 7 * 86_400),
    lowBalanceThreshold: int('PROVIDER_LOW_BALANCE_THRESHOLD', 0, 0, Number.MAX_SAFE_INTEGER),
  };
  const inbox = { pollSeconds: int('INBOX_POLL_SECONDS', 60, 1, 86_400) };
  const dlr = {
    pollAfterSeconds: int('DLR_POLL_AFTER_SECONDS', 600, 1, 86_400),
    reconcileAfterSeconds: int('RECONCILE_AFTER_SECONDS', 120, 1, 86_400),
    reapplySeconds: int('DLR_REAPPLY_SECONDS', 30, 1, 3_600),
  };
  const webhooks = {
    enabled: parseBool('WEBHOOK_WORKER', env.WEBHOOK_WORKER, true, problems),
    concurrency: int('WEBHOOK_CONCURRENCY', 512, 1, 4000),
    perEndpoint: int('WEBHOOK_ENDPOINT_CONCURRENCY', 64, 1, 1000),
    timeoutMs: int('WEBHOOK_TIMEOUT_MS', 15_000, 100, 120_000),
    pollMs: int('WEBHOOK_POLL_MS', 250, 10, 60_000),
  };
  const usageExport = {
    stallSeconds: int('USAGE_EXPORT_STALL_SECONDS', USAGE_EXPORT_STALL_SECONDS, 1, 3600),
    concurrency: int(
      'USAGE_EXPORT_CONCURRENCY',
      Math.max(1, Math.floor(dbPoolSize / USAGE_EXPORT_POOL_DIVISOR)),
      1,
      dbPoolSize,
    ),
  };
  const retentionMonths = parseRetention(env.RETENTION_MONTHS, problems);
  const embeddedPgPort = int('EMBEDDED_PG_PORT', 54329, 1, 65535);
  const { workers, reason: workersReason } = resolveWorkers(env.WORKERS, !databaseUrl, machine, problems);
  const bodyLimit = bytes.parse(env.BODY_LIMIT || '1mb');
  if (bodyLimit === null || !Number.isSafeInteger(bodyLimit) || bodyLimit < 1024) {
    problems.push('BODY_LIMIT must be a size of at least 1kb (e.g. 1mb, 512kb)');
  }
  if (dispatcher.leaseMs < provider.totalTimeoutMs + LEASE_MARGIN_MS) {
    problems.push(
      `DISPATCH_LEASE_MS (${dispatcher.leaseMs}) must be at least PROVIDER_TOTAL_TIMEOUT_MS + ${LEASE_MARGIN_MS} (${provider.totalTimeoutMs + LEASE_MARGIN_MS}): a live send must end before its lease`,
    );
  }

  if (problems.length > 0) throw new ConfigError(problems);

  const jwtSecret = env.JWT_SECRET || devSecret(dataDir, 'jwt-secret', () => randomBytes(48).toString('base64url'));
  if (!rawKey)
    encryptionKey = Buffer.from(
      devSecret(dataDir, 'encryption-key', () => randomBytes(32).toString('base64')),
      'base64',
    );

  return {
    nodeEnv,
    production,
    port,
    host: env.HOST || '0.0.0.0',
    databaseUrl,
    dataDir,
    publicBaseUrl,
    jwtSecret,
    jwtExpiresInSeconds,
    encryptionKey,
    adminEmail: env.ADMIN_EMAIL?.toLowerCase(),
    adminPassword: env.ADMIN_PASSWORD,
    webhookAllowPrivate,
    sandbox,
    logLevel,
    bodyLimit: bodyLimit ?? 0,
    dbPoolSize,
    embeddedPgPort,
    shutdownTimeoutMs: provider.totalTimeoutMs + SHUTDOWN_MARGIN_MS,
    workers,
    workersReason,
    dispatcher,
    provider,
    inbox,
    dlr,
    retentionMonths,
    webhooks,
    usageExport,
  };
}

/** Nest injection token for AppConfig. */
export const APP_CONFIG = Symbol('APP_CONFIG');
