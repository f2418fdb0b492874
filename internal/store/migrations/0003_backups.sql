-- Backups and their verifications (internal/backup). One row per attempt, so that a
-- failing backup is visible (readiness, metrics) and not silent. The dumps themselves are
-- files in the backup folder; this table only says what happened to them.
CREATE TABLE backup_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        text        NOT NULL CHECK (kind IN ('backup', 'verify')),
    ok          boolean     NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz NOT NULL CHECK (finished_at >= started_at),
    duration_ms bigint      NOT NULL CHECK (duration_ms >= 0),
    file        text        NOT NULL DEFAULT '',  -- the dump's file name (no folder)
    size_bytes  bigint      NOT NULL DEFAULT 0 CHECK (size_bytes >= 0),
    message     text        NOT NULL DEFAULT '',  -- what went wrong, or a summary
    host        text        NOT NULL DEFAULT ''   -- the machine that ran it
);

-- Readiness and metrics ask for the newest success and the newest failure of each kind.
CREATE INDEX backup_runs_latest ON backup_runs (kind, ok, finished_at DESC);

COMMENT ON TABLE backup_runs IS 'Backups taken and verified by restoring them (internal/backup)';
