package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

//go:embed migrations/*.sql
var embedded embed.FS

// ErrMigrationChanged means a migration already applied to the database differs from
// the one in this binary. Migrations are forward-only: add a new one instead.
var ErrMigrationChanged = errors.New("applied migration was changed")

// ErrBadMigration means a migration file is misnamed or numbered twice.
var ErrBadMigration = errors.New("bad migration file")

// migrateLockKey is the advisory lock held while migrating, so that two servers started
// together with --migrate-on-start apply each migration once.
const migrateLockKey int64 = 0x64656261_74650001 // "debate" + 1

// Migration is one forward-only schema change, from migrations/NNNN_name.sql.
type Migration struct {
	Version  int
	Name     string
	SQL      string
	Checksum string // sha256 of SQL, hex
}

// ID is the migration's file name without the extension, e.g. "0001_baseline".
func (m Migration) ID() string { return fmt.Sprintf("%04d_%s", m.Version, m.Name) }

var migrationFile = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// LoadMigrations reads NNNN_name.sql files from the root of fsys, in version order.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var out []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := migrationFile.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("store: %w: %s: want NNNN_lower_case_name.sql", ErrBadMigration, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if v == 0 {
			return nil, fmt.Errorf("store: %w: %s: versions start at 0001", ErrBadMigration, e.Name())
		}
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("store: %w: %s and %s have the same version", ErrBadMigration, prev, e.Name())
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("store: read %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		out = append(out, Migration{Version: v, Name: m[2], SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}

// Migrator applies our migrations and River's.
type Migrator struct {
	pool       *pgxpool.Pool
	migrations []Migration
	river      *rivermigrate.Migrator[pgx.Tx] // nil: leave River's tables alone
}

// NewMigrator prepares to apply the migrations in fsys; with river true, River's queue
// tables are migrated too (before ours, so that ours may refer to them).
func NewMigrator(pool *pgxpool.Pool, fsys fs.FS, river bool, logger *slog.Logger) (*Migrator, error) {
	ms, err := LoadMigrations(fsys)
	if err != nil {
		return nil, err
	}
	m := &Migrator{pool: pool, migrations: ms}
	if river {
		if logger == nil {
			logger = slog.New(slog.DiscardHandler)
		}
		rm, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("store: river migrator: %w", err)
		}
		m.river = rm
	}
	return m, nil
}

// newMigrator is the migrator for the schema embedded in this binary, River's included.
func (s *Store) newMigrator() (*Migrator, error) {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return NewMigrator(s.pool, sub, true, s.logger)
}

// MigrateResult lists what one run applied; both empty means the schema was current.
type MigrateResult struct {
	Applied      []string // our migration IDs
	RiverApplied []int    // River migration versions
}

// Migrate applies every pending migration, each in its own transaction, under an advisory
// lock. A second run applies nothing.
func (m *Migrator) Migrate(ctx context.Context) (*MigrateResult, error) {
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: migrate: %w: %w", ErrUnavailable, err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return nil, fmt.Errorf("store: migrate: take lock: %w", err)
	}
	defer func() {
		// Unlock on a fresh context: the caller's may be cancelled by now. If this fails
		// the session ends with the connection and PostgreSQL drops the lock then.
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, "SELECT pg_advisory_unlock($1)", migrateLockKey); err != nil {
			conn.Conn().Close(uctx)
		}
	}()

	res := &MigrateResult{}
	if m.river != nil {
		rr, err := m.river.Migrate(ctx, rivermigrate.DirectionUp, nil)
		if err != nil {
			return nil, fmt.Errorf("store: river migrations: %w", err)
		}
		for _, v := range rr.Versions {
			res.RiverApplied = append(res.RiverApplied, v.Version)
		}
	}

	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		checksum   text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`); err != nil {
		return nil, fmt.Errorf("store: create schema_migrations: %w", err)
	}
	applied, err := appliedMigrations(ctx, conn.Conn())
	if err != nil {
		return nil, err
	}
	if err := m.checkApplied(applied); err != nil {
		return nil, err
	}
	for _, mg := range m.migrations {
		if _, done := applied[mg.Version]; done {
			continue
		}
		if err := applyOne(ctx, conn.Conn(), mg); err != nil {
			return res, err
		}
		res.Applied = append(res.Applied, mg.ID())
	}
	return res, nil
}

func applyOne(ctx context.Context, conn *pgx.Conn, mg Migration) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("store: migration %s: begin: %w", mg.ID(), err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
	// No arguments: pgx sends the file with the simple protocol, so it may hold several
	// statements.
	if _, err := tx.Exec(ctx, mg.SQL); err != nil {
		return fmt.Errorf("store: migration %s failed, nothing of it was applied: %w", mg.ID(), err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
		mg.Version, mg.Name, mg.Checksum); err != nil {
		return fmt.Errorf("store: migration %s: record: %w", mg.ID(), err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("store: migration %s: commit: %w", mg.ID(), err)
	}
	return nil
}

type appliedRow struct{ name, checksum string }

func appliedMigrations(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}) (map[int]appliedRow, error) {
	rows, err := q.Query(ctx, "SELECT version, name, checksum FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	out := map[int]appliedRow{}
	var v int
	var r appliedRow
	_, err = pgx.ForEachRow(rows, []any{&v, &r.name, &r.checksum}, func() error {
		out[v] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: read schema_migrations: %w", err)
	}
	return out, nil
}

// checkApplied refuses a database whose applied migrations were edited since.
func (m *Migrator) checkApplied(applied map[int]appliedRow) error {
	for _, mg := range m.migrations {
		a, ok := applied[mg.Version]
		if ok && a.checksum != mg.Checksum {
			return fmt.Errorf("store: %w: %s was applied with checksum %.12s…, this binary has %.12s…",
				ErrMigrationChanged, mg.ID(), a.checksum, mg.Checksum)
		}
	}
	return nil
}

// Status is how the database's schema compares with this binary's migrations.
type Status struct {
	Pending []string // our migrations not yet applied
	Unknown []int    // applied versions this binary does not know (a newer binary ran)
	Changed []string // applied migrations whose text differs from ours
	River   []string // River's complaints (pending River migrations), empty when current
}

// Current reports whether the schema is exactly what this binary expects.
func (s Status) Current() bool {
	return len(s.Pending) == 0 && len(s.Unknown) == 0 && len(s.Changed) == 0 && len(s.River) == 0
}

// String says what is not current, for health checks and logs.
func (s Status) String() string {
	if s.Current() {
		return "current"
	}
	var parts []string
	if len(s.Pending) > 0 {
		parts = append(parts, "pending: "+strings.Join(s.Pending, ", "))
	}
	if len(s.Unknown) > 0 {
		parts = append(parts, fmt.Sprintf("applied by a newer version: %v", s.Unknown))
	}
	if len(s.Changed) > 0 {
		parts = append(parts, "changed after being applied: "+strings.Join(s.Changed, ", "))
	}
	if len(s.River) > 0 {
		parts = append(parts, "river: "+strings.Join(s.River, "; "))
	}
	return strings.Join(parts, "; ")
}

// Status compares the database's schema with this migrator's migrations, read-only.
func (m *Migrator) Status(ctx context.Context) (Status, error) {
	var st Status
	var exists bool
	if err := m.pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return st, fmt.Errorf("store: %w: %w", ErrUnavailable, err)
	}
	applied := map[int]appliedRow{}
	if exists {
		a, err := appliedMigrations(ctx, m.pool)
		if err != nil {
			return st, err
		}
		applied = a
	}
	known := map[int]bool{}
	for _, mg := range m.migrations {
		known[mg.Version] = true
		a, ok := applied[mg.Version]
		switch {
		case !ok:
			st.Pending = append(st.Pending, mg.ID())
		case a.checksum != mg.Checksum:
			st.Changed = append(st.Changed, mg.ID())
		}
	}
	for v := range applied {
		if !known[v] {
			st.Unknown = append(st.Unknown, v)
		}
	}
	sort.Ints(st.Unknown)
	if m.river != nil {
		vr, err := m.river.Validate(ctx, nil)
		if err != nil {
			return st, fmt.Errorf("store: river status: %w", err)
		}
		if !vr.OK {
			st.River = vr.Messages
		}
	}
	return st, nil
}
