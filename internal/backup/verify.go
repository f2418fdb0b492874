package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"debate/internal/store"
)

// scratchPrefix starts the name of every scratch database, so that ones left behind by a
// crashed verification can be found and dropped.
const scratchPrefix = "debate_verify_"

// scratchMaxAge is how old a scratch database must be before another verification drops
// it as abandoned: far longer than any verification runs.
const scratchMaxAge = 24 * time.Hour

// VerifyResult is the outcome of restoring a dump into a scratch database.
type VerifyResult struct {
	Entry    Entry
	Manifest *Manifest
	Tables   int   // tables compared
	Rows     int64 // rows in all of them
	Duration time.Duration
}

// Verify restores the dump at path (empty: the newest complete one in dir) into a new
// scratch database on st's server, checks that its schema version and the row count of
// every table equal the manifest's, and drops the scratch database. The checksum is
// checked first: a truncated or damaged dump fails with ErrCorrupt before any restore.
func Verify(ctx context.Context, st *store.Store, dir, path, pgBin string) (*VerifyResult, error) {
	start := time.Now()
	e, err := resolveEntry(dir, path)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Entry: e}
	f, m, _, err := openChecked(e.Path, false)
	if err != nil {
		return res, err
	}
	defer f.Close()
	res.Manifest = m
	if m == nil {
		return res, fmt.Errorf("backup: %w: %s has no manifest to verify against", ErrIncomplete, e.Name())
	}

	major, _, err := store.ServerMajorVersion(ctx, st.Pool())
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	tl, err := findTools(ctx, pgBin, max(major, m.PGDumpMajor))
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	dropAbandonedScratch(ctx, st, time.Now())

	scratch := scratchPrefix + time.Now().UTC().Format("20060102t150405") + "_" + randomHex(4)
	env, err := libpqEnv(st.ConnString(), scratch)
	if err != nil {
		return res, fmt.Errorf("backup: %w", err)
	}
	if err := st.CreateScratchDatabase(ctx, scratch); err != nil {
		return res, fmt.Errorf("backup: verify: %w", err)
	}
	defer func() {
		// A fresh context: the scratch database must go even when ctx was cancelled.
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = st.DropDatabase(dctx, scratch)
	}()
	if err := runTool(ctx, env, f, nil, tl.restore, restoreArgs(scratch)...); err != nil {
		return res, fmt.Errorf("backup: %w: %s into a scratch database: %w", ErrRestore, e.Name(), err)
	}
	conn, err := st.ConnectTo(ctx, scratch)
	if err != nil {
		return res, fmt.Errorf("backup: verify: %w", err)
	}
	defer conn.Close(context.Background())
	schema, err := store.ReadSchemaVersion(ctx, conn)
	if err != nil {
		return res, fmt.Errorf("backup: verify: %w", err)
	}
	counts, err := store.CountRows(ctx, conn)
	if err != nil {
		return res, fmt.Errorf("backup: verify: %w", err)
	}
	if err := compare(m, schema, counts); err != nil {
		return res, fmt.Errorf("backup: %s: %w", e.Name(), err)
	}
	res.Tables = len(counts)
	for _, n := range counts {
		res.Rows += n
	}
	res.Duration = time.Since(start)
	return res, nil
}

// restoreArgs are pg_restore's flags, for verification and restore alike: all or nothing
// (one transaction, stop at the first error), and objects owned by the restoring role
// without the source's grants, so that a dump restores on a server with other roles.
func restoreArgs(database string) []string {
	return []string{"--dbname=" + conninfoDB(database), "--no-password",
		"--exit-on-error", "--single-transaction", "--no-owner", "--no-acl"}
}

// resolveEntry is the backup at path, or the newest complete one in dir.
func resolveEntry(dir, path string) (Entry, error) {
	if path == "" {
		if dir == "" {
			return Entry{}, fmt.Errorf("backup: no file given and no backup folder set (--backup-dir)")
		}
		return Newest(dir)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return Entry{}, fmt.Errorf("backup: %w", err)
	}
	info, err := os.Stat(abs)
	if err != nil {
		return Entry{}, fmt.Errorf("backup: %w", err)
	}
	if !info.Mode().IsRegular() {
		return Entry{}, fmt.Errorf("backup: %s is not a file", path)
	}
	e, ok := parseEntry(filepath.Dir(abs), filepath.Base(abs))
	if !ok {
		// Renamed by hand: still a dump, just without the time in its name.
		e = Entry{Path: abs, Time: info.ModTime().UTC()}
	}
	e.Size = info.Size()
	_, errSum := os.Stat(checksumPath(abs))
	_, errMan := os.Stat(manifestPath(abs))
	e.Complete = errSum == nil && errMan == nil
	return e, nil
}

// openChecked opens a dump after checking it against its checksum file; the manifest is
// read too (nil when absent and allowed). skipMissingChecksum accepts a dump without a
// checksum file (summed is then false); a checksum file that disagrees is always an error.
func openChecked(path string, skipMissingChecksum bool) (f *os.File, m *Manifest, summed bool, err error) {
	m, merr := ReadManifest(path)
	want, err := readChecksum(path)
	switch {
	case err == nil:
	case skipMissingChecksum && errors.Is(err, ErrNoChecksum):
		want = ""
	default:
		return nil, nil, false, err
	}
	f, err = os.Open(path)
	if err != nil {
		return nil, nil, false, fmt.Errorf("backup: %w", err)
	}
	if want != "" {
		var size int64
		if merr == nil {
			size = m.Size
		}
		if err := checkSum(f, want, size); err != nil {
			f.Close()
			return nil, nil, false, err
		}
	}
	if merr != nil {
		if os.IsNotExist(statErr(manifestPath(path))) {
			return f, nil, want != "", nil
		}
		f.Close()
		return nil, nil, false, merr
	}
	if want != "" && m.SHA256 != "" && m.SHA256 != want {
		f.Close()
		return nil, nil, false, fmt.Errorf("backup: %w: the manifest and the checksum file of %s disagree", ErrCorrupt, filepath.Base(path))
	}
	return f, m, want != "", nil
}

func statErr(p string) error {
	_, err := os.Stat(p)
	return err
}

// compare checks a restored database against the manifest, listing every difference.
func compare(m *Manifest, schema store.SchemaVersion, counts map[string]int64) error {
	var diffs []string
	if schema != m.Schema {
		diffs = append(diffs, fmt.Sprintf("schema version is %s, the manifest says %s", schema, m.Schema))
	}
	names := map[string]bool{}
	for t := range m.Tables {
		names[t] = true
	}
	for t := range counts {
		names[t] = true
	}
	sorted := make([]string, 0, len(names))
	for t := range names {
		sorted = append(sorted, t)
	}
	sort.Strings(sorted)
	for _, t := range sorted {
		want, inManifest := m.Tables[t]
		got, restored := counts[t]
		switch {
		case !restored:
			diffs = append(diffs, fmt.Sprintf("table %s is missing (the manifest counts %d rows)", t, want))
		case !inManifest:
			diffs = append(diffs, fmt.Sprintf("table %s is not in the manifest (%d rows restored)", t, got))
		case got != want:
			diffs = append(diffs, fmt.Sprintf("table %s has %d rows, the manifest says %d", t, got, want))
		}
	}
	if len(diffs) > 0 {
		return fmt.Errorf("%w: %s", ErrMismatch, strings.Join(diffs, "; "))
	}
	return nil
}

// dropAbandonedScratch drops scratch databases left by verifications that died, judged
// by the time in their names. Best effort: a failure here must not fail a verification.
func dropAbandonedScratch(ctx context.Context, st *store.Store, now time.Time) {
	names, err := st.DatabasesLike(ctx, scratchPrefix)
	if err != nil {
		return
	}
	for _, n := range names {
		stamp, _, ok := strings.Cut(strings.TrimPrefix(n, scratchPrefix), "_")
		t, err := time.Parse("20060102t150405", stamp)
		if !ok || err != nil || now.Sub(t) < scratchMaxAge {
			continue
		}
		_ = st.DropDatabase(ctx, n)
	}
}
