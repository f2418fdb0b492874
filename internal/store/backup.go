package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The queries of internal/backup: snapshots shared with pg_dump, row counts, schema
// versions, scratch databases and the record of backup runs.

// ErrBackupBusy means another backup of the same database holds the backup lock.
var ErrBackupBusy = errors.New("another backup of this database is in progress")

// backupLockKey is the advisory lock a backup holds for as long as its dump runs, so that
// two backups started at once do not both dump (the second is refused with ErrBackupBusy).
const backupLockKey int64 = 0x64656261_74650003 // "debate" + 3

// Querier is what the read-only queries below need: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// SchemaVersion is the newest migration applied: ours and River's. A dump records it and
// verification checks that the restored database has the same.
type SchemaVersion struct {
	Debate int `json:"debate"`
	River  int `json:"river"`
}

func (v SchemaVersion) String() string { return fmt.Sprintf("debate %d, river %d", v.Debate, v.River) }

// userSchemas selects the namespaces pg_dump dumps by default: all but the system ones.
const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema')
	AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp\_%'`

// ReadSchemaVersion reads the newest applied migrations; 0 where a table is missing.
func ReadSchemaVersion(ctx context.Context, q Querier) (SchemaVersion, error) {
	var v SchemaVersion
	var hasOurs, hasRiver bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL,
		to_regclass('river_migration') IS NOT NULL`).Scan(&hasOurs, &hasRiver); err != nil {
		return v, fmt.Errorf("store: schema version: %w", err)
	}
	if hasOurs {
		if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v.Debate); err != nil {
			return v, fmt.Errorf("store: schema version: %w", err)
		}
	}
	if hasRiver {
		if err := q.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM river_migration").Scan(&v.River); err != nil {
			return v, fmt.Errorf("store: river schema version: %w", err)
		}
	}
	return v, nil
}

// Tables lists every table whose rows pg_dump saves (ordinary and partitioned tables of
// the non-system schemas), as schema.name, sorted.
func Tables(ctx context.Context, q Querier) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT n.nspname, c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p') AND `+userSchemas+`
		ORDER BY 1, 2`)
	if err != nil {
		return nil, fmt.Errorf("store: list tables: %w", err)
	}
	var out []string
	var schema, name string
	if _, err := pgx.ForEachRow(rows, []any{&schema, &name}, func() error {
		out = append(out, schema+"."+name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: list tables: %w", err)
	}
	return out, nil
}

// CountRows counts the rows of every table (see Tables) in one statement, so that inside
// a REPEATABLE READ transaction all counts come from one snapshot.
func CountRows(ctx context.Context, q Querier) (map[string]int64, error) {
	tables, err := Tables(ctx, q)
	if err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(tables))
	if len(tables) == 0 {
		return counts, nil
	}
	parts := make([]string, len(tables))
	for i, t := range tables {
		schema, name, _ := strings.Cut(t, ".")
		parts[i] = fmt.Sprintf("SELECT %d, count(*) FROM %s", i, pgx.Identifier{schema, name}.Sanitize())
	}
	rows, err := q.Query(ctx, strings.Join(parts, " UNION ALL "))
	if err != nil {
		return nil, fmt.Errorf("store: count rows: %w", err)
	}
	var i int
	var n int64
	if _, err := pgx.ForEachRow(rows, []any{&i, &n}, func() error {
		counts[tables[i]] = n
		return nil
	}); err != nil {
		return nil, fmt.Errorf("store: count rows: %w", err)
	}
	return counts, nil
}

// UserRelations lists up to limit tables, views and sequences outside the system schemas:
// a database where it is empty holds no data a restore could overwrite.
func UserRelations(ctx context.Context, q Querier, limit int) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT n.nspname || '.' || c.relname FROM pg_class c
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND `+userSchemas+`
		ORDER BY 1 LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("store: list relations: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: list relations: %w", err)
	}
	return out, nil
}

// DropUserSchemas drops every non-system schema with all it holds, then creates an empty
// public schema: what `debate restore --force` does before restoring. One transaction.
func DropUserSchemas(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: drop schemas: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	rows, err := tx.Query(ctx, `SELECT n.nspname FROM pg_namespace n WHERE `+userSchemas+`
		AND n.nspname NOT LIKE 'pg\_%' ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("store: drop schemas: %w", err)
	}
	schemas, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("store: drop schemas: %w", err)
	}
	for _, s := range schemas {
		if _, err := tx.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{s}.Sanitize()+" CASCADE"); err != nil {
			return fmt.Errorf("store: drop schema %s: %w", s, err)
		}
	}
	if _, err := tx.Exec(ctx, "CREATE SCHEMA public"); err != nil {
		return fmt.Errorf("store: create schema public: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: drop schemas: %w", err)
	}
	return nil
}

// ServerMajorVersion is the PostgreSQL major version of the server (e.g. 15): pg_dump and
// pg_restore must be at least as new.
func ServerMajorVersion(ctx context.Context, q Querier) (major int, full string, err error) {
	var num string
	if err := q.QueryRow(ctx, "SELECT current_setting('server_version_num'), current_setting('server_version')").Scan(&num, &full); err != nil {
		return 0, "", fmt.Errorf("store: server version: %w", err)
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", fmt.Errorf("store: server version %q: %w", num, err)
	}
	return n / 10000, full, nil
}

// DumpSnapshot is an open REPEATABLE READ transaction whose snapshot is exported for
// pg_dump --snapshot, holding the backup lock: the rows counted through it and the rows
// pg_dump writes are the same. Close it after pg_dump has finished.
type DumpSnapshot struct {
	conn *pgx.Conn
	tx   pgx.Tx
	// ID is the exported snapshot's name, for pg_dump --snapshot.
	ID string
	// Database is the name of the database being dumped.
	Database string
}

// BeginDumpSnapshot opens the snapshot on a connection of its own (not from the pool: it
// stays busy for the whole dump). ErrBackupBusy when another backup holds the lock.
func (s *Store) BeginDumpSnapshot(ctx context.Context) (*DumpSnapshot, error) {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, fmt.Errorf("store: backup: %w: %w", ErrUnavailable, err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("store: backup: begin: %w", err)
	}
	ds := &DumpSnapshot{conn: conn, tx: tx}
	var locked bool
	// A transaction-level lock: it goes away with the transaction, whatever happens.
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1), pg_export_snapshot(), current_database()",
		backupLockKey).Scan(&locked, &ds.ID, &ds.Database); err != nil {
		ds.Close()
		return nil, fmt.Errorf("store: backup: export snapshot: %w", err)
	}
	if !locked {
		ds.Close()
		return nil, ErrBackupBusy
	}
	return ds, nil
}

// CountRows counts every table's rows in the snapshot.
func (d *DumpSnapshot) CountRows(ctx context.Context) (map[string]int64, error) {
	return CountRows(ctx, d.tx)
}

// SchemaVersion reads the schema version in the snapshot.
func (d *DumpSnapshot) SchemaVersion(ctx context.Context) (SchemaVersion, error) {
	return ReadSchemaVersion(ctx, d.tx)
}

// Close ends the transaction (releasing the lock) and the connection.
func (d *DumpSnapshot) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = d.tx.Rollback(ctx)
	_ = d.conn.Close(ctx)
}

// ConnectTo opens a connection to another database of the same server, with the same
// credentials: the scratch database of a verification.
func (s *Store) ConnectTo(ctx context.Context, database string) (*pgx.Conn, error) {
	cfg := s.pool.Config().ConnConfig.Copy()
	cfg.Database = database
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store: connect to database %s: %w", database, err)
	}
	return conn, nil
}

// ConnString is the connection string the store was opened with (it may hold a password:
// never log it).
func (s *Store) ConnString() string { return s.pool.Config().ConnString() }

// DatabaseName is the name of the database the store is connected to.
func (s *Store) DatabaseName() string { return s.pool.Config().ConnConfig.Database }

// CreateScratchDatabase creates an empty database (from template0, so nothing of
// template1 leaks in) for a verification to restore into.
func (s *Store) CreateScratchDatabase(ctx context.Context, name string) error {
	if _, err := s.pool.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return fmt.Errorf("store: create scratch database %s (the database role needs CREATEDB): %w", name, err)
	}
	return nil
}

// DropDatabase drops a database, cutting off any session still in it.
func (s *Store) DropDatabase(ctx context.Context, name string) error {
	if _, err := s.pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("store: drop database %s: %w", name, err)
	}
	return nil
}

// DatabasesLike lists the databases whose names start with prefix.
func (s *Store) DatabasesLike(ctx context.Context, prefix string) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1", prefix)
	if err != nil {
		return nil, fmt.Errorf("store: list databases: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("store: list databases: %w", err)
	}
	return out, nil
}

// Backup run kinds.
const (
	RunBackup = "backup"
	RunVerify = "verify"
)

// BackupRun is one recorded backup or verification.
type BackupRun struct {
	Kind       string // RunBackup or RunVerify
	Dir        string // the dump's folder, absolute: runs are judged per folder
	OK         bool
	StartedAt  time.Time
	FinishedAt time.Time
	Duration   time.Duration
	File       string // the dump's file name
	Size       int64
	Message    string
	Host       string
}

// RecordBackupRun stores the outcome of a backup or verification.
func (s *Store) RecordBackupRun(ctx context.Context, r BackupRun) error {
	if r.Kind != RunBackup && r.Kind != RunVerify {
		return fmt.Errorf("store: backup run kind %q: want %q or %q", r.Kind, RunBackup, RunVerify)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO backup_runs
		(kind, ok, started_at, finished_at, duration_ms, file, size_bytes, message, host, dir)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		r.Kind, r.OK, r.StartedAt, r.FinishedAt, r.Duration.Milliseconds(), r.File, r.Size, r.Message, r.Host, r.Dir)
	if err != nil {
		return fmt.Errorf("store: record %s run: %w", r.Kind, err)
	}
	return nil
}

// PruneBackupRuns deletes the records of runs that finished before before, except the
// newest success and the newest failure of each kind in each folder (which readiness and
// metrics judge by). It returns how many it deleted.
func (s *Store) PruneBackupRuns(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM backup_runs WHERE finished_at < $1 AND id NOT IN (
		SELECT DISTINCT ON (dir, kind, ok) id FROM backup_runs ORDER BY dir, kind, ok, finished_at DESC)`, before)
	if err != nil {
		return 0, fmt.Errorf("store: prune backup runs: %w", err)
	}
	return tag.RowsAffected(), nil
}

// BackupRuns are the newest recorded runs; nil where there is none.
type BackupRuns struct {
	LastBackup, LastGoodBackup *BackupRun
	LastVerify, LastGoodVerify *BackupRun
}

// LatestBackupRuns reads the newest success and the newest failure of each kind, of the
// dumps in the folder dir.
func (s *Store) LatestBackupRuns(ctx context.Context, dir string) (BackupRuns, error) {
	var out BackupRuns
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT ON (kind, ok)
		kind, ok, started_at, finished_at, duration_ms, file, size_bytes, message, host, dir
		FROM backup_runs WHERE dir = $1 ORDER BY kind, ok, finished_at DESC`, dir)
	if err != nil {
		return out, fmt.Errorf("store: read backup runs: %w", err)
	}
	var runs []BackupRun
	var r BackupRun
	var ms int64
	if _, err := pgx.ForEachRow(rows, []any{&r.Kind, &r.OK, &r.StartedAt, &r.FinishedAt, &ms, &r.File, &r.Size, &r.Message, &r.Host, &r.Dir}, func() error {
		r.Duration = time.Duration(ms) * time.Millisecond
		runs = append(runs, r)
		return nil
	}); err != nil {
		return out, fmt.Errorf("store: read backup runs: %w", err)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].FinishedAt.Before(runs[j].FinishedAt) })
	for i := range runs {
		r := &runs[i]
		// Ascending order: later rows overwrite "last".
		switch r.Kind {
		case RunBackup:
			out.LastBackup = r
			if r.OK {
				out.LastGoodBackup = r
			}
		case RunVerify:
			out.LastVerify = r
			if r.OK {
				out.LastGoodVerify = r
			}
		}
	}
	return out, nil
}
