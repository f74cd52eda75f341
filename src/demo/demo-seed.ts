import { INestApplication } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AuthService } from '../auth/auth.service';
import { LedgerService } from '../billing/ledger.service';
import type { AppConfig } from '../config/config';
import { ProviderAccountsService } from '../provider/provider-accounts.service';
import { ApiKeysService } from '../tenants/api-keys.service';
import { TenantsService } from '../tenants/tenants.service';
import { startSandbox, SandboxHandle } from '../sandbox';
import { toPublicId } from '../common/ids';

const DEMO_ACCOUNT = 'sandbox-demo';
const DEMO_TENANT = 'Demo tenant';
const SANDBOX_USER = 'demo';

/**
 * SANDBOX=true: start the built-in provider simulator in this process and make sure a demo
 * provider account (pointing at it), a demo tenant with a top-up and an API key exist. Credentials
 * are printed the first time only, and kept in `<dataDir>/sandbox-credentials.txt` (mode 600).
 */
export async function seedSandbox(app: INestApplication, config: AppConfig): Promise<string[]> {
  const accounts = app.get(ProviderAccountsService);
  const tenants = app.get(TenantsService);
  const apiKeys = app.get(ApiKeysService);
  const ledger = app.get(LedgerService);
  const auth = app.get(AuthService);

  const sandboxPassword = existingSandboxPassword(config) ?? randomBytes(12).toString('base64url');
  const sandbox: SandboxHandle = await startSandbox({ port: 0, host: '127.0.0.1', accounts: [] });
  const close = app.close.bind(app);
  app.close = async () => {
    await close();
    await sandbox.close();
  };

  let account = await accounts.findByName(DEMO_ACCOUNT);
  if (!account) {
    const dto = await accounts.create({
      name: DEMO_ACCOUNT,
      baseUrl: sandbox.url,
      username: SANDBOX_USER,
      password: sandboxPassword,
    });
    account = await accounts.findEntity(dto.id);
  } else {
    // The simulator listens on a new port each start.
    await accounts.update(toPublicId('providerAccount', account.id), {
      baseUrl: sandbox.url,
      password: sandboxPassword,
    });
  }
  sandbox.addAccount({
    username: SANDBOX_USER,
    password: sandboxPassword,
    balance: '10000000',
    callbackUrl: accounts.dlrCallbackUrl(account),
  });

  const lines: string[] = [];
  const credentialsFile = join(config.dataDir, 'sandbox-credentials.txt');
  const first = !(await tenants.existsByName(DEMO_TENANT));
  if (first) {
    const tenant = await tenants.create({
      name: DEMO_TENANT,
      providerAccountId: toPublicId('providerAccount', account.id),
      pricePerSegment: 350,
      lowBalanceThreshold: 10000,
    });
    const tenantUuid = (await tenants.findEntity(tenant.id)).id;
    await ledger.topUp(tenantUuid, 1_000_000, 'sandbox welcome credit', null);
    const key = await apiKeys.create(tenantUuid, 'sandbox demo key');
    let adminLine = '';
    if (!config.adminEmail) {
      const adminPassword = randomBytes(12).toString('base64url');
      if (await auth.bootstrapAdmin('admin@gerbang.local', adminPassword)) {
        adminLine = `  admin login:   admin@gerbang.local / ${adminPassword}`;
      }
    }
    const base = `http://localhost:${config.port}`;
    lines.push(
      '',
      '  Gerbang is running in SANDBOX mode (built-in provider simulator, nothing leaves this machine).',
      `  Swagger UI:    ${base}/docs`,
      `  demo tenant:   ${tenant.id} (balance 1000000, price 350 per segment)`,
      `  demo API key:  ${key.key}   (shown once; also saved in ${credentialsFile})`,
      ...(adminLine ? [adminLine] : []),
      '  try it:',
      `    curl -s ${base}/v1/balance -H 'Authorization: Bearer ${key.key}'`,
      `    curl -s ${base}/v1/messages -H 'Authorization: Bearer ${key.key}' -H 'Content-Type: application/json' -d '{"to":"0812-3456-7890","text":"Halo dari Gerbang"}'`,
      '',
    );
    mkdirSync(config.dataDir, { recursive: true });
    writeFileSync(credentialsFile, lines.join('\n') + `\nsandbox provider password: ${sandboxPassword}\n`, {
      mode: 0o600,
    });
  } else {
    lines.push(`  SANDBOX mode: demo tenant exists; its API key was printed on first start (see ${credentialsFile}).`);
  }
  return lines;
}

function existingSandboxPassword(config: AppConfig): string | null {
  const file = join(config.dataDir, 'sandbox-credentials.txt');
  if (!existsSync(file)) return null;
  const m = /sandbox provider password: (\S+)/.exec(readFileSync(file, 'utf8'));
  return m ? m[1] : null;
}
