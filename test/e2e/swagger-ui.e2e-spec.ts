/**
 * Swagger UI in a real browser (Debian's chromium through playwright-core) against a real gateway on
 * an ephemeral port, with the sandbox provider in-process: an admin logs in, authorizes, creates a
 * provider account, a tenant, an API key and a top-up through "Try it out", and the tenant's key then
 * sends a message. No request may leave 127.0.0.1 (Swagger UI is served from the installed package).
 * No chromium is a failure, not a skip: CI installs it.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { startSandbox, type SandboxHandle } from '../../src/sandbox';
import { ADMIN_EMAIL, ADMIN_PASSWORD, startTestApp, TestApp, unique } from '../support/app';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

/** The operation block of `method path` (Swagger UI renders each operation once, under its tag). */
function operation(page: Page, method: string, path: string): Locator {
  return page.locator(`.opblock.opblock-${method}`, {
    has: page.locator(`.opblock-summary-path[data-path="${path}"]`),
  });
}

/** "Try it out" → fill path parameters and the JSON body → Execute; returns the live response's status and body. */
async function tryItOut(
  page: Page,
  method: string,
  path: string,
  input: { params?: Record<string, string>; body?: unknown },
): Promise<{ status: number; body: Record<string, unknown> }> {
  const op = operation(page, method, path);
  await op.scrollIntoViewIfNeeded();
  if (!(await op.locator('.opblock-body').isVisible())) await op.locator('.opblock-summary').first().click();
  const tryOut = op.locator('button.try-out__btn');
  if ((await tryOut.textContent())?.trim() === 'Try it out') await tryOut.click();
  for (const [name, value] of Object.entries(input.params ?? {})) {
    await op.locator(`tr[data-param-name="${name}"] input`).fill(value);
  }
  if (input.body !== undefined) await op.locator('textarea.body-param__text').fill(JSON.stringify(input.body));
  await op.locator('button.execute').click();
  const live = op.locator('.live-responses-table');
  const statusCell = live.locator('tbody .response-col_status').first();
  await statusCell.waitFor({ state: 'visible', timeout: 15_000 });
  const status = Number((await statusCell.textContent())?.trim());
  const text = (await live.locator('tbody .response-col_description .microlight').first().textContent()) ?? '';
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { unparsed: text };
  }
  return { status, body };
}

/** "Authorize" → fill `value` into the scheme named `scheme` → Authorize → Close. */
async function authorize(page: Page, scheme: string, value: string): Promise<void> {
  await page.locator('.scheme-container button.authorize').click();
  const modal = page.locator('.modal-ux');
  await modal.waitFor({ state: 'visible' });
  const container = modal.locator('.auth-container', { has: page.locator(`h4:has-text("${scheme}")`) });
  const logout = container.locator('button:has-text("Logout")');
  if (await logout.isVisible()) await logout.click();
  await container.locator('input').first().fill(value);
  await container.locator('button.authorize').click();
  await container.locator('button:has-text("Logout")').waitFor({ state: 'visible' });
  await modal.locator('button.btn-done, button:has-text("Close")').first().click();
  await modal.waitFor({ state: 'hidden' });
}

describe('Swagger UI in a real browser', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let browser: Browser;
  let baseUrl: string;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`chromium is required at ${CHROMIUM} (apt-get install chromium)`);
    sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
    await t.app.listen(0, '127.0.0.1');
    baseUrl = `http://127.0.0.1:${(t.app.getHttpServer().address() as { port: number }).port}`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await t?.close();
    await sandbox?.close();
  });

  it('logs in, authorizes, sets up a tenant and sends a message through "Try it out"', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const offsite: string[] = [];
    await page.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.hostname === '127.0.0.1') return route.continue();
      offsite.push(url.toString());
      return route.abort();
    });
    try {
      await page.goto(`${baseUrl}/docs`);
      await page.locator('.swagger-ui .info .title').waitFor({ timeout: 20_000 });
      expect(await page.locator('.swagger-ui .info .title').textContent()).toContain('Gerbang SMS gateway');

      // 1. Log in through the UI and read the token from the response on the page.
      const login = await tryItOut(page, 'post', '/v1/auth/login', {
        body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      });
      expect(login.status).toBe(200);
      expect(typeof login.body.accessToken).toBe('string');
      await authorize(page, 'admin-jwt', login.body.accessToken as string);

      // The token survives a reload (persistAuthorization).
      await page.reload();
      await page.locator('.swagger-ui .info .title').waitFor();
      await expect(page.locator('.scheme-container button.authorize.locked').count()).resolves.toBe(1);

      // 2. Provider account on the sandbox, tenant, API key, top-up.
      const username = unique('ui');
      const pac = await tryItOut(page, 'post', '/v1/admin/provider-accounts', {
        body: { name: unique('pac-ui'), baseUrl: sandbox.url, username, password: 'ui-provider-pw' },
      });
      expect(pac.status).toBe(201);
      expect(pac.body).toMatchObject({ id: expect.stringMatching(/^pac_/), username });
      expect(pac.body).not.toHaveProperty('password');
      sandbox.addAccount({
        username,
        password: 'ui-provider-pw',
        balance: '1000000',
        callbackUrl: (pac.body.dlrCallbackUrl as string).replace(/^http:\/\/localhost:\d+/, baseUrl),
      });

      const tenant = await tryItOut(page, 'post', '/v1/admin/tenants', {
        body: { name: unique('tenant-ui'), providerAccountId: pac.body.id, pricePerSegment: 350 },
      });
      expect(tenant.status).toBe(201);
      expect(tenant.body).toMatchObject({ id: expect.stringMatching(/^ten_/), balance: 0, pricePerSegment: 350 });

      const key = await tryItOut(page, 'post', '/v1/admin/tenants/{id}/api-keys', {
        params: { id: tenant.body.id as string },
        body: { name: 'swagger ui' },
      });
      expect(key.status).toBe(201);
      expect(key.body.key).toEqual(expect.any(String));

      const topUp = await tryItOut(page, 'post', '/v1/admin/tenants/{id}/topups', {
        params: { id: tenant.body.id as string },
        body: { amount: 10000, reference: 'INV-UI-1' },
      });
      expect(topUp.status).toBe(201);
      expect(topUp.body).toMatchObject({
        entry: { kind: 'topup', amount: 10000, balanceAfter: 10000, reference: 'INV-UI-1' },
        balance: { balance: 10000, state: 'active' },
      });

      // 3. The tenant's key sends a message.
      await authorize(page, 'api-key-bearer', key.body.key as string);
      const sent = await tryItOut(page, 'post', '/v1/messages', {
        body: { to: '081234567890', text: 'Halo dari Swagger UI', reference: 'ui-1' },
      });
      expect(sent.status).toBe(202);
      expect(sent.body).toMatchObject({
        id: expect.stringMatching(/^msg_/),
        to: '6281234567890',
        status: 'queued',
        price: 350,
        reference: 'ui-1',
      });

      // The page shows the 202 next to the operation.
      const live = operation(page, 'post', '/v1/messages').locator('.live-responses-table');
      await live.scrollIntoViewIfNeeded();
      await expect(live.locator('tbody .response-col_status').first().textContent()).resolves.toMatch(/202/);
      expect(offsite).toEqual([]);
    } finally {
      // The artifact is written on failure too: it shows where the UI stood.
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: join(ARTIFACTS, 'swagger-ui.png') }).catch(() => undefined);
      await page.close();
    }
  }, 120_000);
});
