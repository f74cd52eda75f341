import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startTestApp, TestApp } from '../support/app';

const run = promisify(execFile);

describe('operations: health, metrics, docs, OpenAPI lint', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('GET /health/live answers 200 without credentials', async () => {
    const res = await t.http.get('/health/live');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('GET /health/ready reports the database reachable and every migration applied', async () => {
    const res = await t.http.get('/health/ready');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok', checks: { database: 'ok', migrations: 'ok' } });
  });

  it('GET /metrics is Prometheus text with the HTTP request counter, labelled by route template', async () => {
    await t.http.get('/health/live');
    const res = await t.http.get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.text).toContain('# TYPE gerbang_http_requests_total counter');
    expect(res.text).toMatch(/gerbang_http_requests_total\{method="GET",route="\/health\/live",status="200"\} \d+/);
    expect(res.text).toContain('gerbang_http_request_duration_seconds_bucket');
  });

  it('GET /docs serves the Swagger UI as HTML', async () => {
    const res = await t.http.get('/docs').redirects(2);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.text).toMatch(/swagger-ui/i);
  });

  it('GET /docs-json is an OpenAPI 3 document with both security schemes and the admin and tenant routes', async () => {
    const res = await t.http.get('/docs-json');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual(['admin-jwt', 'api-key', 'api-key-bearer']);
    for (const path of [
      '/v1/auth/login',
      '/v1/admin/users',
      '/v1/admin/provider-accounts',
      '/v1/admin/provider-accounts/{id}',
      '/v1/admin/tenants',
      '/v1/admin/tenants/{id}',
      '/v1/admin/tenants/{id}/api-keys',
      '/v1/admin/tenants/{id}/api-keys/{keyId}',
      '/v1/admin/tenants/{id}/topups',
      '/v1/admin/tenants/{id}/adjustments',
      '/v1/admin/tenants/{id}/ledger',
      '/v1/admin/tenants/{id}/balance',
      '/v1/balance',
      '/v1/ledger',
    ]) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    // The CLI plugin's class-validator shim reached the schema: required fields and limits are documented.
    const createTenant = doc.components.schemas.CreateTenantDto;
    expect(createTenant.required).toEqual(expect.arrayContaining(['name', 'providerAccountId', 'pricePerSegment']));
    // Every operation is documented by a summary (the controller method's JSDoc) and grouped by a tag.
    const undocumented = Object.entries(
      doc.paths as Record<string, Record<string, { summary?: string; tags?: string[] }>>,
    ).flatMap(([path, ops]) =>
      Object.entries(ops)
        .filter(([, op]) => !op.summary || !op.tags?.length)
        .map(([method]) => `${method.toUpperCase()} ${path}`),
    );
    expect(undocumented).toEqual([]);
    // Nothing in the document reveals a provider password.
    expect(Object.keys(doc.components.schemas.ProviderAccountDto.properties)).not.toContain('password');
  });

  it('the OpenAPI document passes `redocly lint` (recommended rules, redocly.yaml) with no errors and no warnings', async () => {
    const doc = (await t.http.get('/docs-json')).body;
    const dir = mkdtempSync(join(tmpdir(), 'gerbang-openapi-'));
    const file = join(dir, 'openapi.json');
    writeFileSync(file, JSON.stringify(doc, null, 2));
    if (process.env.OPENAPI_DUMP) writeFileSync(process.env.OPENAPI_DUMP, JSON.stringify(doc, null, 2));
    const root = process.cwd();
    let stdout: string;
    let stderr: string;
    let exitCode = 0;
    try {
      ({ stdout, stderr } = await run(
        process.execPath,
        [
          join(root, 'node_modules/@redocly/cli/bin/cli.js'),
          'lint',
          file,
          '--format=stylish',
          `--config=${join(root, 'redocly.yaml')}`,
        ],
        {
          cwd: root,
          timeout: 60_000,
          env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
        },
      ));
    } catch (e) {
      const err = e as { code?: number; stdout?: string; stderr?: string };
      exitCode = typeof err.code === 'number' ? err.code : 1;
      stdout = err.stdout ?? '';
      stderr = err.stderr ?? String(e);
    }
    rmSync(dir, { recursive: true, force: true });
    const output = `${stdout}\n${stderr}`;
    // The whole linter output is in the failure message.
    expect(`exit ${exitCode}\n${output}`).toMatch(/^exit 0\n/);
    expect(output).toMatch(/Your API description is valid/);
    expect(output).not.toMatch(/Your config has/);
    // stylish lines: `  <line>:<col>  <severity>  <rule>  <message>`
    const problems = output.split('\n').filter((l) => /^\s*\d+:\d+\s+(error|warning)\s/.test(l));
    // No errors and no warnings: every operation documents its problem+json 4xx responses.
    expect(problems).toEqual([]);
    expect(output).not.toMatch(/You have \d+ warnings?/);
  }, 60_000);
});
