package backup

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"debate/internal/store"
)

// put makes a backup's files with the time in its name; complete adds the checksum.
func put(t *testing.T, dir string, at time.Time, seq int, complete bool) string {
	t.Helper()
	p := filepath.Join(dir, dumpFileName(at, seq))
	files := []string{p, manifestPath(p)}
	if complete {
		files = append(files, checksumPath(p))
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	sort.Strings(out)
	return out
}

func TestPruneRemovesExactlyTheExpiredBackups(t *testing.T) {
	now := time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	dir := t.TempDir()
	keepDumps := []string{
		put(t, dir, now.Add(-1*day), 0, true),
		put(t, dir, now.Add(-1*day), 1, true), // same second, made unique
		put(t, dir, now.Add(-29*day), 0, true),
		put(t, dir, now.Add(-30*day+time.Minute), 0, true), // just inside the retention
		put(t, dir, now.Add(-2*time.Hour), 0, false),       // a backup possibly still being written
	}
	gone := []string{
		put(t, dir, now.Add(-30*day-time.Minute), 0, true),
		put(t, dir, now.Add(-90*day), 0, true),
		put(t, dir, now.Add(-3*day), 0, false), // interrupted long ago
	}
	// Leftover temporaries: an old one goes, a fresh one (a running writer) stays.
	oldTmp := filepath.Join(dir, ".debate-20250101T000000Z-123.dump.tmp")
	newTmp := filepath.Join(dir, ".debate-20250630T115900Z-456.dump.tmp")
	for _, p := range []string{oldTmp, newTmp} {
		os.WriteFile(p, nil, 0o600)
	}
	os.Chtimes(oldTmp, now.Add(-2*day), now.Add(-2*day))
	os.Chtimes(newTmp, now.Add(-time.Minute), now.Add(-time.Minute))
	// Files that are not ours are never touched, whatever their age.
	other := filepath.Join(dir, "notes.txt")
	os.WriteFile(other, nil, 0o600)
	os.Chtimes(other, now.Add(-400*day), now.Add(-400*day))

	var want []string
	for _, p := range keepDumps {
		for _, f := range filesOf(p) {
			if _, err := os.Stat(f); err == nil {
				want = append(want, filepath.Base(f))
			}
		}
	}
	want = append(want, filepath.Base(newTmp), "notes.txt")
	sort.Strings(want)

	removed, err := Prune(dir, now, 3, 30*day)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Fatalf("left:\n%v\nwant:\n%v", got, want)
	}
	var wantRemoved []string
	for _, p := range gone {
		for _, f := range filesOf(p) {
			wantRemoved = append(wantRemoved, f)
		}
	}
	wantRemoved = append(wantRemoved, oldTmp)
	// The interrupted backup had no checksum file: nothing to remove there.
	wantRemoved = slices.DeleteFunc(wantRemoved, func(p string) bool { return p == checksumPath(gone[2]) })
	sort.Strings(wantRemoved)
	sort.Strings(removed)
	if !slices.Equal(removed, wantRemoved) {
		t.Fatalf("removed:\n%v\nwant:\n%v", removed, wantRemoved)
	}

	// A second prune finds nothing more.
	if again, err := Prune(dir, now, 3, 30*day); err != nil || len(again) != 0 {
		t.Fatalf("second prune removed %v (%v)", again, err)
	}
}

func TestPruneAlwaysKeepsTheNewest(t *testing.T) {
	now := time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	dir := t.TempDir()
	// The server was off for months: every backup is past the retention.
	var all []string
	for i := range 6 {
		all = append(all, put(t, dir, now.Add(-time.Duration(100+i)*day), 0, true))
	}
	// An interrupted newer one does not count among the kept.
	put(t, dir, now.Add(-time.Hour), 0, false)
	if _, err := Prune(dir, now, 3, 30*day); err != nil {
		t.Fatal(err)
	}
	es, _ := List(dir)
	var complete []string
	for _, e := range es {
		if e.Complete {
			complete = append(complete, e.Path)
		}
	}
	if !slices.Equal(complete, all[:3]) {
		t.Fatalf("kept %v, want the newest three %v", complete, all[:3])
	}
	// A mistyped folder is an error, not "nothing to prune".
	missing := t.TempDir() + "/missing"
	for _, f := range []func() error{
		func() error { _, err := Prune(missing, now, 3, day); return err },
		func() error { _, err := List(missing); return err },
		func() error { _, err := Newest(missing); return err },
	} {
		if err := f(); !errors.Is(err, ErrNoFolder) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "--backup-dir") {
			t.Errorf("missing folder: %v", err)
		}
	}
}

func TestJudgeAndDue(t *testing.T) {
	now := time.Date(2025, 6, 30, 12, 0, 0, 0, time.UTC)
	run := func(kind string, ok bool, ago time.Duration) *store.BackupRun {
		return &store.BackupRun{Kind: kind, OK: ok, FinishedAt: now.Add(-ago), File: "f.dump", Message: "boom\nsecond line"}
	}
	good := run(store.RunBackup, true, 2*time.Hour)
	verified := run(store.RunVerify, true, 24*time.Hour)
	for _, tc := range []struct {
		name              string
		r                 store.BackupRuns
		ok                bool
		backupDue, verDue bool
	}{
		{"nothing yet", store.BackupRuns{}, false, true, false},
		{"all good", store.BackupRuns{LastBackup: good, LastGoodBackup: good, LastVerify: verified, LastGoodVerify: verified}, true, false, false},
		{"backup too old", store.BackupRuns{LastBackup: run(store.RunBackup, true, 40*time.Hour), LastGoodBackup: run(store.RunBackup, true, 40*time.Hour),
			LastVerify: verified, LastGoodVerify: verified}, false, true, false},
		{"last backup failed an hour ago: wait", store.BackupRuns{LastBackup: run(store.RunBackup, false, time.Hour), LastGoodBackup: run(store.RunBackup, true, 25*time.Hour),
			LastVerify: verified, LastGoodVerify: verified}, false, false, false},
		{"last backup failed hours ago: retry", store.BackupRuns{LastBackup: run(store.RunBackup, false, retryFailedAfter), LastGoodBackup: run(store.RunBackup, true, 25*time.Hour),
			LastVerify: verified, LastGoodVerify: verified}, false, true, false},
		{"backups failing, never one good, retry", store.BackupRuns{LastBackup: run(store.RunBackup, false, 4*time.Hour)}, false, true, false},
		{"backups failing, never one good, wait", store.BackupRuns{LastBackup: run(store.RunBackup, false, time.Hour)}, false, false, false},
		{"never verified", store.BackupRuns{LastBackup: good, LastGoodBackup: good}, false, false, true},
		{"verification too old", store.BackupRuns{LastBackup: good, LastGoodBackup: good,
			LastVerify: run(store.RunVerify, true, 9*24*time.Hour), LastGoodVerify: run(store.RunVerify, true, 9*24*time.Hour)}, false, false, true},
		{"verification failed, newer dump since", store.BackupRuns{LastBackup: good, LastGoodBackup: good,
			LastVerify: run(store.RunVerify, false, 3*time.Hour), LastGoodVerify: run(store.RunVerify, true, 5*24*time.Hour)}, false, false, true},
		{"verification failed an hour ago, no newer dump: wait", store.BackupRuns{LastBackup: good, LastGoodBackup: good,
			LastVerify: run(store.RunVerify, false, time.Hour), LastGoodVerify: run(store.RunVerify, true, 5*24*time.Hour)}, false, false, false},
		{"verification failed hours ago, no newer dump: retry", store.BackupRuns{LastBackup: run(store.RunBackup, true, 6*time.Hour), LastGoodBackup: run(store.RunBackup, true, 6*time.Hour),
			LastVerify: run(store.RunVerify, false, 4*time.Hour), LastGoodVerify: run(store.RunVerify, true, 5*24*time.Hour)}, false, false, true},
		{"verification never passed, failed an hour ago: wait", store.BackupRuns{LastBackup: good, LastGoodBackup: good,
			LastVerify: run(store.RunVerify, false, time.Hour)}, false, false, false},
	} {
		ok, detail := judge(tc.r, now, 36*time.Hour, 8*24*time.Hour)
		b, v := due(tc.r, now, 36*time.Hour, 8*24*time.Hour)
		if ok != tc.ok || b != tc.backupDue || v != tc.verDue {
			t.Errorf("%s: healthy %v (%s), due %v/%v; want %v, %v/%v", tc.name, ok, detail, b, v, tc.ok, tc.backupDue, tc.verDue)
		}
		if !ok && (detail == "" || strings.Contains(detail, "\n")) {
			t.Errorf("%s: detail %q must say what is wrong on one line", tc.name, detail)
		}
	}
}

// TestBackupPrunesOldRunRecords: a backup also removes run records older than the
// history it keeps, except the newest success and failure of each kind, by which
// readiness judges.
func TestBackupPrunesOldRunRecords(t *testing.T) {
	st, _ := migrated(t)
	ctx := testCtx(t)
	now := time.Now()
	old := now.Add(-runHistory - 24*time.Hour)
	for _, r := range []struct {
		kind string
		ok   bool
		at   time.Time
		file string
	}{
		{store.RunBackup, true, old.Add(-time.Hour), "old-good.dump"},    // superseded: goes
		{store.RunBackup, true, old, "old-good-2.dump"},                  // superseded: goes
		{store.RunBackup, false, old.Add(-time.Hour), "old-bad.dump"},    // superseded by the next: goes
		{store.RunBackup, false, old, "newest-bad.dump"},                 // newest failed backup: stays
		{store.RunVerify, true, old, "only-verify.dump"},                 // newest passed verification: stays
		{store.RunBackup, true, now.Add(-runHistory / 2), "recent.dump"}, // young: stays
	} {
		err := st.RecordBackupRun(ctx, store.BackupRun{Kind: r.kind, OK: r.ok, StartedAt: r.at, FinishedAt: r.at, File: r.file})
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig(t.TempDir())
	cfg.Retention = 24 * time.Hour // shorter than the history: the history decides
	svc := New(st, cfg, nil)
	res, _, err := svc.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := st.Pool().Query(ctx, `SELECT file FROM backup_runs ORDER BY file`)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"newest-bad.dump", "only-verify.dump", "recent.dump", res.Entry.Name()}
	slices.Sort(want)
	if !slices.Equal(files, want) {
		t.Fatalf("records after the backup: %q, want %q", files, want)
	}
}

// A backup dated far ahead (a wrong clock, a renamed copy) is never the newest, so the
// verification checks the backups being taken now.
func TestNewestPassesOverBackupsDatedInTheFuture(t *testing.T) {
	dir := t.TempDir()
	now := time.Now().UTC()
	future := put(t, dir, time.Date(2099, 12, 31, 0, 0, 0, 0, time.UTC), 0, true)
	if _, err := Newest(dir); !errors.Is(err, ErrNoBackups) || !strings.Contains(err.Error(), filepath.Base(future)) {
		t.Fatalf("only a future-dated backup: %v", err)
	}
	soon := put(t, dir, now.Add(time.Hour).Truncate(time.Second), 0, true) // a clock a little ahead: counts
	if e, err := Newest(dir); err != nil || e.Path != soon {
		t.Fatalf("newest %v %v, want %s", e.Path, err, soon)
	}
}
