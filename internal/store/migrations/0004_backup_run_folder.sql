-- Each backup run records the folder of its dump, so that a server judges only the runs
-- of its own backup folder: a verification of a copy elsewhere (or of a mistyped path)
-- neither fails nor passes the server's backups. Runs recorded before this have no
-- folder ('') and are judged by no server; the server's watchdog takes and verifies a
-- backup at its next start.
ALTER TABLE backup_runs ADD COLUMN dir text NOT NULL DEFAULT '';

DROP INDEX backup_runs_latest;
CREATE INDEX backup_runs_latest ON backup_runs (dir, kind, ok, finished_at DESC);

COMMENT ON COLUMN backup_runs.dir IS 'the folder of the dump (absolute path)';
