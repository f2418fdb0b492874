-- Baseline of Debate's own schema. River's queue tables (river_job, river_queue, …) are
-- migrated separately by River's migrator, before these files; the build-service tables
-- come in later numbered files.
--
-- Rules: forward-only (never edit a file once merged; add the next number), one file per
-- transaction, and no statements that refuse to run in a transaction
-- (CREATE INDEX CONCURRENTLY, ALTER TYPE … ADD VALUE before PostgreSQL 12).
COMMENT ON TABLE schema_migrations IS 'Debate schema migrations applied (internal/store/migrations)';
