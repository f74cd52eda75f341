// Prepares the test database once per jest run. Migrations are applied by the app itself (the same
// code path as production) the first time a test boots it.
// TEST_DATABASE_URL, else PostgreSQL on 127.0.0.1:5432 if it answers, else an embedded PostgreSQL
// under .data/test-pg (so `npm test` needs nothing but Node on a fresh machine).
const { Client } = require('pg');
const path = require('node:path');

async function reachable(url) {
  const c = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await c.connect();
    await c.end();
    return true;
  } catch {
    return false;
  }
}

module.exports = async function globalSetup() {
  let base = process.env.TEST_DATABASE_URL;
  if (!base) {
    const local = 'postgres://postgres@127.0.0.1:5432/gerbang_test';
    const adminUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
    if (await reachable(adminUrl)) base = local;
    else {
      const { startEmbeddedPostgres } = await import('../../dist/src/database/embedded/embedded-postgres.js');
      const db = await startEmbeddedPostgres(path.join(__dirname, '../../.data/test-pg'), (_level, msg) =>
        console.log(msg),
      );
      globalThis.__GERBANG_EMBEDDED_PG__ = db;
      const u = new URL(db.url);
      u.pathname = '/gerbang_test';
      base = u.toString();
    }
  }
  const url = new URL(base);
  const dbName = url.pathname.slice(1);
  process.env.TEST_DATABASE_URL = url.toString();
  const admin = new URL(url.toString());
  admin.pathname = '/postgres';
  const client = new Client({ connectionString: admin.toString() });
  await client.connect();
  await client.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await client.query(`CREATE DATABASE "${dbName}"`);
  await client.end();
};
