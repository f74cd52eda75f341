import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { dataSourceOptions } from '../database/data-source';
import { LedgerVerifyService, problemLine } from './ledger-verify.service';

/**
 * `npm run ledger:verify`: checks the books of the database at DATABASE_URL with the same service as
 * GET /v1/admin/ledger/verify. Prints one line per problem; exit code 0 when the books are right,
 * 1 when a problem was found or the check could not run.
 */
async function main(): Promise<number> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error('ledger:verify: DATABASE_URL is not set');
    return 1;
  }
  const dataSource = new DataSource({ ...dataSourceOptions(url, 2), migrations: [] });
  await dataSource.initialize();
  try {
    const result = await new LedgerVerifyService(dataSource).verify();
    for (const p of result.problems) console.log(problemLine(p));
    console.log(
      result.ok
        ? `ledger:verify: ok (${result.tenants} tenants, ${result.entries} ledger entries)`
        : `ledger:verify: ${result.problems.length} problem(s) (${result.tenants} tenants, ${result.entries} ledger entries)`,
    );
    return result.ok ? 0 : 1;
  } finally {
    await dataSource.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`ledger:verify: ${err.message}`);
    process.exit(1);
  },
);
