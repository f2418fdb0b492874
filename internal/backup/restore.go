package backup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"debate/internal/store"
)

// RestoreOptions tune Restore.
type RestoreOptions struct {
	PGBin string // see config.Backup.PGBin
	// Force restores into a database that is not empty, dropping everything in its
	// schemas first. Without it such a database is refused with ErrNotEmpty.
	Force bool
	// SkipChecksum accepts a dump that has no checksum file (one that disagrees with
	// its checksum file is refused all the same).
	SkipChecksum bool
}

// RestoreResult describes a finished restore.
type RestoreResult struct {
	Entry    Entry
	Manifest *Manifest // nil when the dump came without one
	// Replaced lists (up to a few) relations that were in the database before --force.
	Replaced []string
	// ChecksumChecked is true when the dump matched its checksum file (false only with
	// SkipChecksum and no such file).
	ChecksumChecked bool
	// Checked is true when the row counts and schema version were compared with the
	// manifest after restoring, and matched.
	Checked  bool
	Migrated *store.MigrateResult
	Duration time.Duration
}

// Restore restores the dump at path into st's database, which must be empty unless
// opts.Force, then applies the migrations of this binary: a dump of an older version
// comes back at the current schema. The checksum is checked before anything is touched,
// and the restored row counts against the manifest before migrating.
func Restore(ctx context.Context, st *store.Store, path string, opts RestoreOptions) (*RestoreResult, error) {
	start := time.Now()
	e, err := resolveEntry("", path)
	if err != nil {
		return nil, err
	}
	res := &RestoreResult{Entry: e}
	f, m, summed, err := openChecked(e.Path, opts.SkipChecksum)
	if err != nil {
		return res, err
	}
	res.ChecksumChecked = summed
	defer f.Close()
	res.Manifest = m

	major, _, err := store.ServerMajorVersion(ctx, st.Pool())
	if err != nil {
		return res, fmt.Errorf("backup: restore: %w", err)
	}
	need := major
	if m != nil {
		need = max(need, m.PGDumpMajor)
	}
	tl, err := findTools(ctx, opts.PGBin, need)
	if err != nil {
		return res, fmt.Errorf("backup: restore: %w", err)
	}
	db := st.DatabaseName()
	rels, err := store.UserRelations(ctx, st.Pool(), 6)
	if err != nil {
		return res, fmt.Errorf("backup: restore: %w", err)
	}
	if len(rels) > 0 {
		shown := rels
		if len(shown) > 5 {
			shown = append(shown[:5:5], "…")
		}
		if !opts.Force {
			return res, fmt.Errorf("backup: restore: %w: database %s holds %s; restore into an empty database (createdb), or pass --force to drop everything in it first",
				ErrNotEmpty, db, strings.Join(shown, ", "))
		}
		res.Replaced = shown
		conn, err := st.ConnectTo(ctx, db)
		if err != nil {
			return res, fmt.Errorf("backup: restore: %w", err)
		}
		err = store.DropUserSchemas(ctx, conn)
		conn.Close(context.Background())
		if err != nil {
			return res, fmt.Errorf("backup: restore --force: %w", err)
		}
	}
	env, err := libpqEnv(st.ConnString(), db)
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	if err := runTool(ctx, env, f, nil, tl.restore, restoreArgs(db)...); err != nil {
		// --single-transaction: nothing of the dump was kept.
		return res, fmt.Errorf("backup: %w: %s into %s (nothing of it was kept): %w", ErrRestore, e.Name(), db, err)
	}
	if m != nil {
		schema, err := store.ReadSchemaVersion(ctx, st.Pool())
		if err != nil {
			return res, fmt.Errorf("backup: restore: %w", err)
		}
		counts, err := store.CountRows(ctx, st.Pool())
		if err != nil {
			return res, fmt.Errorf("backup: restore: %w", err)
		}
		if err := compare(m, schema, counts); err != nil {
			return res, fmt.Errorf("backup: restored %s into %s, but: %w (migrations not applied)", e.Name(), db, err)
		}
		res.Checked = true
	}
	mr, err := st.Migrate(ctx)
	res.Migrated = mr
	if err != nil {
		return res, fmt.Errorf("backup: restored %s, then migrations failed: %w", e.Name(), err)
	}
	res.Duration = time.Since(start)
	return res, nil
}
