-- Grants for the role the gateway runs as (docs/operations.md, "Database roles").
-- Run as the migration role, which owns every table, after each `migration:run` (idempotent):
--   psql "$MIGRATION_DATABASE_URL" -v runtime_role=gerbang_app -v database=gerbang -f scripts/runtime-role-grants.sql
-- The runtime role owns nothing, so it can neither ALTER/DROP tables nor disable the append-only trigger;
-- on ledger_entries it may only SELECT and INSERT.
GRANT CONNECT ON DATABASE :"database" TO :"runtime_role";
GRANT USAGE ON SCHEMA public TO :"runtime_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"runtime_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"runtime_role";
REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON ledger_entries FROM :"runtime_role";
REVOKE CREATE ON SCHEMA public FROM :"runtime_role";
