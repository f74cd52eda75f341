/**
 * The module boundary rule of eslint.config.mjs (docs/decisions.md "Lint"), proven on source text linted as
 * if it were src/demo/demo-seed.ts: another module's public files pass, its internals do not.
 */
import { ESLint } from 'eslint';

const RULE = 'boundaries/dependencies';

async function boundaryFindings(source: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: process.cwd() });
  const [result] = await eslint.lintText(source, { filePath: 'src/demo/demo-seed.ts' });
  return result.messages.filter((m) => m.ruleId === RULE).map((m) => `${m.line}: ${m.message}`);
}

describe('lint: a module uses another module only through its public files', () => {
  it('allows index.ts, *.module.ts, *.service.ts, *.dto.ts, *.entity.ts, *.decorators.ts and the shared kernel', async () => {
    const findings = await boundaryFindings(
      [
        "import { startSandbox } from '../sandbox';",
        "import { ProviderClient } from '../provider/client';",
        "import { LedgerService } from '../billing/ledger.service';",
        "import { BillingModule } from '../billing/billing.module';",
        "import { MessageDto } from '../messaging/message.dto';",
        "import { Tenant } from '../tenants/tenant.entity';",
        "import { Public } from '../auth/auth.decorators';",
        "import { Problem } from '../common/problem';",
        "import { AppConfig } from '../config/config';",
        "import { rows } from '../database/raw-rows';",
        'export const used = [startSandbox, LedgerService, BillingModule, MessageDto, Tenant, Public, Problem, rows];',
        'export type Used = ProviderClient | AppConfig;',
      ].join('\n'),
    );
    expect(findings).toEqual([]);
  }, 120_000);

  it("refuses another module's internal files", async () => {
    const findings = await boundaryFindings(
      [
        "import { startSandbox } from '../sandbox/sandbox';",
        "import { messageDto } from '../messaging/message.view';",
        "import { classifySendExchange } from '../provider/client/send-classifier';",
        'export const used = [startSandbox, messageDto, classifySendExchange];',
      ].join('\n'),
    );
    expect(findings).toHaveLength(3);
  }, 120_000);
});
