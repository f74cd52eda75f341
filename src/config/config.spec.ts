import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig, ConfigError, loadConfig } from './config';

/** loadConfig never reads process.env when given an env; every case gets its own DATA_DIR. */
describe('loadConfig', () => {
  let dataDir: string;
  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'gerbang-config-'));
  });
  afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

  const load = (env: Record<string, string | undefined> = {}): AppConfig => loadConfig({ DATA_DIR: dataDir, ...env });
  const problemsOf = (env: Record<string, string | undefined>): string[] => {
    try {
      load(env);
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      return (e as ConfigError).problems;
    }
    throw new Error(`expected a ConfigError for ${JSON.stringify(env)}`);
  };
  const KEY = randomBytes(32).toString('base64');
  const SECRET = 'x'.repeat(32);

  describe('defaults (API.md "Environment")', () => {
    it('listens on 3000 and is reached at http://localhost:3000', () => {
      const c = load();
      expect(c.port).toBe(3000);
      expect(c.publicBaseUrl).toBe('http://localhost:3000');
    });

    it('derives PUBLIC_BASE_URL from PORT', () => {
      expect(load({ PORT: '8080' }).publicBaseUrl).toBe('http://localhost:8080');
    });

    it('keeps a given PUBLIC_BASE_URL, without a trailing slash', () => {
      expect(load({ PUBLIC_BASE_URL: 'https://sms.example.co.id/' }).publicBaseUrl).toBe('https://sms.example.co.id');
    });

    it.each([
      [undefined, undefined, true],
      ['', undefined, true],
      ['postgres://u:p@db:5432/gerbang', undefined, false],
      ['postgres://u:p@db:5432/gerbang', 'true', true],
      [undefined, 'false', false],
    ])('DATABASE_URL=%p SANDBOX=%p → sandbox %p', (url, sandbox, expected) => {
      const c = load({ DATABASE_URL: url, SANDBOX: sandbox });
      expect(c.sandbox).toBe(expected);
      expect(c.databaseUrl).toBe(url || undefined);
    });

    it.each([
      [undefined, undefined, false],
      ['', '', false],
      ['postgres://u:p@db:5432/gerbang', undefined, false],
      [undefined, 'false', false],
      [undefined, 'true', true],
    ])(
      'NODE_ENV=production DATABASE_URL=%p SANDBOX=%p → sandbox %p (never on by default)',
      (url, sandbox, expected) => {
        const c = load({
          NODE_ENV: 'production',
          JWT_SECRET: SECRET,
          ENCRYPTION_KEY: KEY,
          DATABASE_URL: url,
          SANDBOX: sandbox,
        });
        expect(c.production).toBe(true);
        expect(c.sandbox).toBe(expected);
      },
    );

    it('uses DATA_DIR, development mode and no admin bootstrap', () => {
      const c = load();
      expect(c.dataDir).toBe(dataDir);
      expect(c.production).toBe(false);
      expect(c.adminEmail).toBeUndefined();
      expect(c.webhookAllowPrivate).toBe(false);
    });

    it('sends up to 64 webhooks at once per endpoint and 512 per process unless the environment says otherwise', () => {
      expect(load().webhooks).toMatchObject({ perEndpoint: 64, concurrency: 512 });
      expect(load({ WEBHOOK_ENDPOINT_CONCURRENCY: '16', WEBHOOK_CONCURRENCY: '128' }).webhooks).toMatchObject({
        perEndpoint: 16,
        concurrency: 128,
      });
    });

    it('decides WORKERS from the machine (auto): one process with the embedded database, cores − 1 with DATABASE_URL', () => {
      const eight = () => ({ cores: 8, cpuLimit: undefined });
      expect(loadConfig({ DATA_DIR: dataDir }, eight)).toMatchObject({
        workers: 1,
        workersReason: expect.stringContaining('embedded'),
      });
      const external = { DATA_DIR: dataDir, DATABASE_URL: 'postgres://u@db/gerbang' };
      expect(loadConfig(external, () => ({ cores: 3, cpuLimit: undefined })).workers).toBe(2);
      expect(loadConfig(external, () => ({ cores: 8, cpuLimit: 2 })).workers).toBe(1);
      expect(loadConfig({ ...external, WORKERS: '3' }, eight)).toMatchObject({ workers: 3, workersReason: 'WORKERS' });
    });

    it('reads each inbox every 60 s unless INBOX_POLL_SECONDS says otherwise', () => {
      expect(load().inbox.pollSeconds).toBe(60);
      expect(load({ INBOX_POLL_SECONDS: '15' }).inbox.pollSeconds).toBe(15);
    });

    it('polls reports after 600 s, reconciles uncertain submits after 120 s and sweeps unapplied reports every 30 s unless the environment says otherwise', () => {
      expect(load().dlr).toEqual({ pollAfterSeconds: 600, reconcileAfterSeconds: 120, reapplySeconds: 30 });
      expect(
        load({ DLR_POLL_AFTER_SECONDS: '30', RECONCILE_AFTER_SECONDS: '5', DLR_REAPPLY_SECONDS: '10' }).dlr,
      ).toEqual({
        pollAfterSeconds: 30,
        reconcileAfterSeconds: 5,
        reapplySeconds: 10,
      });
    });

    it('cuts a usage export stalled for 30 s and runs a quarter of DB_POOL_SIZE exports at once unless the environment says otherwise', () => {
      expect(load().usageExport).toEqual({ stallSeconds: 30, concurrency: 5 });
      expect(load({ DB_POOL_SIZE: '3' }).usageExport.concurrency).toBe(1);
      expect(load({ USAGE_EXPORT_STALL_SECONDS: '5', USAGE_EXPORT_CONCURRENCY: '2' }).usageExport).toEqual({
        stallSeconds: 5,
        concurrency: 2,
      });
      expect(problemsOf({ DB_POOL_SIZE: '10', USAGE_EXPORT_CONCURRENCY: '11' })).toEqual([
        'USAGE_EXPORT_CONCURRENCY must be between 1 and 10, got 11',
      ]);
      expect(problemsOf({ USAGE_EXPORT_STALL_SECONDS: '0' })).toEqual([
        'USAGE_EXPORT_STALL_SECONDS must be between 1 and 3600, got 0',
      ]);
    });

    it('keeps 13 months of messages unless RETENTION_MONTHS says otherwise; 0 or off keeps everything', () => {
      expect(load().retentionMonths).toBe(13);
      expect(load({ RETENTION_MONTHS: '24' }).retentionMonths).toBe(24);
      expect(load({ RETENTION_MONTHS: ' 3 ' }).retentionMonths).toBe(3);
      expect(load({ RETENTION_MONTHS: '0' }).retentionMonths).toBeNull();
      expect(load({ RETENTION_MONTHS: 'OFF' }).retentionMonths).toBeNull();
    });

    it('takes JSON bodies up to 1 MB unless BODY_LIMIT says otherwise (bytes, or a size with a unit)', () => {
      expect(load().bodyLimit).toBe(1024 * 1024);
      expect(load({ BODY_LIMIT: '256kb' }).bodyLimit).toBe(256 * 1024);
      expect(load({ BODY_LIMIT: '2097152' }).bodyLimit).toBe(2 * 1024 * 1024);
    });

    it("reads each provider account's balance.php every 900 s; no low-balance threshold by default", () => {
      expect(load().provider).toMatchObject({ balancePollSeconds: 900, lowBalanceThreshold: 0 });
      expect(load({ PROVIDER_BALANCE_POLL_SECONDS: '60' }).provider.balancePollSeconds).toBe(60);
    });
  });

  describe('refuses bad values with a clear message', () => {
    it.each([
      ['PORT', 'abc', /PORT must be an integer/],
      ['WORKERS', '0', /WORKERS must be auto or an integer between 1 and 64/],
      ['PORT', '3000.5', /PORT must be an integer/],
      ['PORT', '-1', /PORT must be an integer/],
      ['DATABASE_URL', 'not a url', /DATABASE_URL is not a valid URL/],
      ['DATABASE_URL', 'mysql://u:p@db/gerbang', /DATABASE_URL must be a postgres:\/\/ URL/],
      ['PUBLIC_BASE_URL', 'localhost:3000/x y', /PUBLIC_BASE_URL/],
      ['PUBLIC_BASE_URL', 'not a url', /PUBLIC_BASE_URL is not a valid URL/],
      ['PUBLIC_BASE_URL', 'ftp://files.example.com', /PUBLIC_BASE_URL must be http\(s\)/],
      // Every DLR callback URL is `<PUBLIC_BASE_URL>/v1/dlr/<token>`: after a query or a fragment the path would
      // be part of it (the provider's callbacks miss the route), and credentials would be in every admin response.
      ['PUBLIC_BASE_URL', 'https://gw.example.co.id/?env=prod', /PUBLIC_BASE_URL must not carry a query/],
      ['PUBLIC_BASE_URL', 'https://gw.example.co.id/#x', /PUBLIC_BASE_URL must not carry a query/],
      ['PUBLIC_BASE_URL', 'https://ops:hunter2@gw.example.co.id', /PUBLIC_BASE_URL must not carry credentials/],
      ['ENCRYPTION_KEY', randomBytes(16).toString('base64'), /ENCRYPTION_KEY must be 32 bytes, base64/],
      ['ENCRYPTION_KEY', randomBytes(33).toString('base64'), /ENCRYPTION_KEY must be 32 bytes, base64/],
      ['ENCRYPTION_KEY', 'correct horse battery staple', /ENCRYPTION_KEY must be 32 bytes, base64/],
      ['JWT_SECRET', 'short-secret', /JWT_SECRET must be at least 32 characters/],
      ['SANDBOX', 'maybe', /SANDBOX must be true or false/],
      ['INBOX_POLL_SECONDS', '0', /INBOX_POLL_SECONDS must be between 1 and 86400/],
      ['DLR_POLL_AFTER_SECONDS', '0', /DLR_POLL_AFTER_SECONDS must be between 1 and 86400/],
      ['RECONCILE_AFTER_SECONDS', 'x', /RECONCILE_AFTER_SECONDS must be an integer/],
      ['DLR_REAPPLY_SECONDS', '3601', /DLR_REAPPLY_SECONDS must be between 1 and 3600/],
      ['INBOX_POLL_SECONDS', '1.5', /INBOX_POLL_SECONDS must be an integer/],
      ['INBOX_POLL_SECONDS', '86401', /INBOX_POLL_SECONDS must be between 1 and 86400/],
      ['PROVIDER_BALANCE_POLL_SECONDS', '5', /PROVIDER_BALANCE_POLL_SECONDS must be between 10 and 604800/],
      ['PROVIDER_BALANCE_POLL_SECONDS', '15m', /PROVIDER_BALANCE_POLL_SECONDS must be an integer/],
      ['PROVIDER_LOW_BALANCE_THRESHOLD', '-1', /PROVIDER_LOW_BALANCE_THRESHOLD must be an integer/],
      ['RETENTION_MONTHS', '2', /RETENTION_MONTHS must be 0 or off .* from 3 to 1200, got "2"/],
      ['RETENTION_MONTHS', '1201', /RETENTION_MONTHS must be 0 or off/],
      ['RETENTION_MONTHS', '13.5', /RETENTION_MONTHS must be 0 or off/],
      ['RETENTION_MONTHS', 'never', /RETENTION_MONTHS must be 0 or off/],
      ['BODY_LIMIT', 'lots', /BODY_LIMIT must be a size of at least 1kb/],
      ['BODY_LIMIT', '100b', /BODY_LIMIT must be a size of at least 1kb/],
    ])('%s=%p', (name, value, message) => {
      const problems = problemsOf({ [name]: value });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(message);
    });

    it('a PUBLIC_BASE_URL with credentials is refused without echoing them', () => {
      expect(problemsOf({ PUBLIC_BASE_URL: 'https://ops:hunter2@gw.example.co.id' }).join('\n')).not.toContain(
        'hunter2',
      );
    });

    // The default PUBLIC_BASE_URL is derived from PORT: an out-of-range PORT must not also be
    // reported as a bad PUBLIC_BASE_URL that the user never set.
    it('PORT="70000" (reported alone, not also as a bad default PUBLIC_BASE_URL)', () => {
      expect(problemsOf({ PORT: '70000' })).toEqual(['PORT must be between 0 and 65535, got 70000']);
    });

    it('a dispatch lease that a live send could outlast (DISPATCH_LEASE_MS < PROVIDER_TOTAL_TIMEOUT_MS + 1 s)', () => {
      expect(problemsOf({ DISPATCH_LEASE_MS: '30500', PROVIDER_TOTAL_TIMEOUT_MS: '30000' })).toEqual([
        'DISPATCH_LEASE_MS (30500) must be at least PROVIDER_TOTAL_TIMEOUT_MS + 1000 (31000): a live send must end before its lease',
      ]);
      expect(load({ DISPATCH_LEASE_MS: '31000', PROVIDER_TOTAL_TIMEOUT_MS: '30000' }).dispatcher.leaseMs).toBe(31000);
    });

    it('the shutdown grace covers a send on the wire: provider total timeout + 10 s', () => {
      expect(load({ PROVIDER_TOTAL_TIMEOUT_MS: '2000' }).shutdownTimeoutMs).toBe(12_000);
      expect(load().shutdownTimeoutMs).toBe(40_000);
    });

    it('lists every problem at once, in the error message too', () => {
      let error: unknown;
      try {
        load({ PORT: 'x', DATABASE_URL: 'nope', JWT_SECRET: 'short' });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ConfigError);
      const { message, problems } = error as ConfigError;
      expect(problems).toHaveLength(3);
      for (const p of problems) expect(message).toContain(p);
      expect(message).toMatch(/^Invalid configuration:/);
    });

    it('accepts a 32-byte base64 key and uses it as is', () => {
      const key = randomBytes(32);
      expect(load({ ENCRYPTION_KEY: key.toString('base64') }).encryptionKey.equals(key)).toBe(true);
    });
  });

  describe('NODE_ENV=production', () => {
    it('refuses to start without JWT_SECRET and ENCRYPTION_KEY, naming both', () => {
      const problems = problemsOf({ NODE_ENV: 'production' });
      expect(problems).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/JWT_SECRET is required/),
          expect.stringMatching(/ENCRYPTION_KEY is required/),
        ]),
      );
      expect(problems).toHaveLength(2);
      // Nothing generated on the way out.
      expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(false);
      expect(existsSync(join(dataDir, 'encryption-key'))).toBe(false);
    });

    it.each([
      [{ JWT_SECRET: SECRET }, /ENCRYPTION_KEY is required/],
      [{ ENCRYPTION_KEY: KEY }, /JWT_SECRET is required/],
    ])('refuses with only one of them (%p)', (env, message) => {
      const problems = problemsOf({ NODE_ENV: 'production', ...env });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(message);
    });

    it('starts with both, and writes no secrets to disk', () => {
      const c = load({ NODE_ENV: 'production', JWT_SECRET: SECRET, ENCRYPTION_KEY: KEY });
      expect(c.production).toBe(true);
      expect(c.jwtSecret).toBe(SECRET);
      expect(c.encryptionKey.toString('base64')).toBe(KEY);
      expect(existsSync(join(dataDir, 'jwt-secret'))).toBe(false);
      expect(existsSync(join(dataDir, 'encryption-key'))).toBe(false);
    });
  });

  describe('development secrets', () => {
    it('are generated on first load, stored under DATA_DIR (mode 600), and the same on the next load', () => {
      const first = load();
      expect(first.jwtSecret.length).toBeGreaterThanOrEqual(32);
      expect(first.encryptionKey).toHaveLength(32);
      expect(first.encryptionKey.equals(Buffer.alloc(32))).toBe(false);
      for (const file of ['jwt-secret', 'encryption-key']) {
        expect(statSync(join(dataDir, file)).mode & 0o777).toBe(0o600);
      }
      expect(readFileSync(join(dataDir, 'jwt-secret'), 'utf8').trim()).toBe(first.jwtSecret);

      const second = load();
      expect(second.jwtSecret).toBe(first.jwtSecret);
      expect(second.encryptionKey.equals(first.encryptionKey)).toBe(true);
    });

    it('differ between data directories', () => {
      const other = mkdtempSync(join(tmpdir(), 'gerbang-config-'));
      try {
        const a = load();
        const b = loadConfig({ DATA_DIR: other });
        expect(b.jwtSecret).not.toBe(a.jwtSecret);
        expect(b.encryptionKey.equals(a.encryptionKey)).toBe(false);
      } finally {
        rmSync(other, { recursive: true, force: true });
      }
    });

    it('are not generated when given, and a given one wins over a stored one', () => {
      load(); // stores generated secrets
      const key = randomBytes(32).toString('base64');
      const c = load({ JWT_SECRET: SECRET, ENCRYPTION_KEY: key });
      expect(c.jwtSecret).toBe(SECRET);
      expect(c.encryptionKey.toString('base64')).toBe(key);
    });

    it('creates DATA_DIR when it does not exist yet', () => {
      const nested = join(dataDir, 'a', 'b');
      const c = loadConfig({ DATA_DIR: nested });
      expect(existsSync(join(nested, 'jwt-secret'))).toBe(true);
      expect(loadConfig({ DATA_DIR: nested }).jwtSecret).toBe(c.jwtSecret);
    });
  });
});
