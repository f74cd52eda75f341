// Creates a fresh test database once per jest run. Migrations are applied by the app itself
// (the same code path as production), the first time a test boots it.
const { Client } = require('pg');

module.exports = async function globalSetup() {
  const url = new URL(process.env.TEST_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/gerbang_test');
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
