package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"debate/internal/config"
	"debate/internal/httpapi"
	"debate/internal/pgtest"
	"debate/internal/store"
)

var pg pgtest.Harness

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// migrated is a database of its own, migrated, for one test.
func migrated(t *testing.T) (*store.Store, string) {
	t.Helper()
	url := pg.NewDatabaseFrom(t, "backup_template", store.MigrateURL)
	st, err := store.Open(context.Background(), url, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, url
}

// fill writes rows into tables of ours and into tables of a test schema with awkward
// values: NULLs, Unicode, bytes, JSON, times, a sequence that moved on.
func fill(t *testing.T, st *store.Store) {
	t.Helper()
	ctx := testCtx(t)
	stmts := []string{
		`CREATE SCHEMA app`,
		`CREATE TABLE app.speeches (id bigserial PRIMARY KEY, title text NOT NULL, body bytea,
			meta jsonb, created timestamptz NOT NULL DEFAULT now(), score numeric(10,3))`,
		`CREATE TABLE public.layers (name text PRIMARY KEY, tags text[], speech bigint REFERENCES app.speeches(id))`,
		`CREATE TABLE public.empty_one (x int)`,
		`INSERT INTO app.speeches (title, body, meta, score)
			SELECT 'speech ' || i || ' — débat ✓', decode(md5(i::text), 'hex'),
			       jsonb_build_object('i', i, 'odd', i % 2 = 1), i / 7.0
			FROM generate_series(1, 500) i`,
		`INSERT INTO app.speeches (title, body, meta) VALUES (E'quote '' and \\ backslash\nnewline', NULL, NULL)`,
		`DELETE FROM app.speeches WHERE id % 10 = 0`, // gaps; the sequence stays ahead
		`INSERT INTO public.layers SELECT 'layer-' || i, ARRAY['a', 'b' || i], i FROM generate_series(1, 9) i`,
		`INSERT INTO backup_runs (kind, ok, started_at, finished_at, duration_ms, file, message)
			VALUES ('backup', true, now() - interval '2 days', now() - interval '2 days', 1234, 'old.dump', 'from fill')`,
	}
	for _, s := range stmts {
		if _, err := st.Pool().Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// contents digests every table's rows (all columns, sorted) and every sequence's
// position: equal contents give equal maps.
func contents(t *testing.T, q store.Querier) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	tables, err := store.Tables(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, tb := range tables {
		schema, name, _ := strings.Cut(tb, ".")
		id := pgx.Identifier{schema, name}.Sanitize()
		var digest string
		var n int64
		if err := q.QueryRow(ctx, fmt.Sprintf(
			`SELECT count(*), coalesce(md5(string_agg(r::text, E'\n' ORDER BY r::text)), '') FROM %s r`, id)).Scan(&n, &digest); err != nil {
			t.Fatalf("%s: %v", tb, err)
		}
		out[tb] = fmt.Sprintf("%d rows %s", n, digest)
	}
	rows, err := q.Query(ctx, `SELECT schemaname || '.' || sequencename, coalesce(last_value, 0) FROM pg_sequences`)
	if err != nil {
		t.Fatal(err)
	}
	var seq string
	var last int64
	if _, err := pgx.ForEachRow(rows, []any{&seq, &last}, func() error {
		out["sequence "+seq] = fmt.Sprint(last)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sameContents(t *testing.T, want, got map[string]string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: restored %q, want %q", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: restored but not in the original", k)
		}
	}
}

func testConfig(dir string) config.Backup {
	return config.Backup{
		Dir: dir, Retention: 30 * 24 * time.Hour, Keep: 3,
		MaxAge: 36 * time.Hour, VerifyMaxAge: 8 * 24 * time.Hour, Timeout: time.Minute,
	}
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// adminExec runs a statement on the cluster's maintenance database.
func adminExec(t *testing.T, sql string) {
	t.Helper()
	ctx := testCtx(t)
	conn, err := pgx.Connect(ctx, pg.Cluster(t).ConnString("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func TestBackupDropRestoreGivesTheSameContents(t *testing.T) {
	st, url := migrated(t)
	fill(t, st)
	dir := t.TempDir()
	ctx := testCtx(t)
	before := contents(t, st.Pool())

	start := time.Now()
	res, err := Dump(ctx, st, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("dump: %d bytes in %s", res.Manifest.Size, time.Since(start).Round(time.Millisecond))

	// The three files, and what they say.
	for _, p := range res.Entry.Files() {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("missing %s: %v", p, err)
		}
	}
	sum := fileSHA(t, res.Entry.Path)
	line, _ := os.ReadFile(checksumPath(res.Entry.Path))
	if string(line) != sum+"  "+res.Entry.Name()+"\n" {
		t.Fatalf("checksum file %q; dump sha256 %s", line, sum)
	}
	m, err := ReadManifest(res.Entry.Path)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := os.Stat(res.Entry.Path)
	if m.SHA256 != sum || m.Size != info.Size() || m.File != res.Entry.Name() {
		t.Fatalf("manifest %+v; file %d bytes %s", m, info.Size(), sum)
	}
	if m.Tables["app.speeches"] != 451 || m.Tables["public.layers"] != 9 || m.Tables["public.empty_one"] != 0 ||
		m.Tables["public.backup_runs"] != 1 || m.Tables["public.schema_migrations"] < 1 {
		t.Fatalf("manifest counts %v", m.Tables)
	}
	if _, ok := m.Tables["public.river_job"]; !ok {
		t.Fatalf("River's tables are not counted: %v", m.Tables)
	}
	if m.Schema.Debate < 3 || m.Schema.River < 1 {
		t.Fatalf("schema version %v", m.Schema)
	}
	if des, _ := os.ReadDir(dir); len(des) != 3 {
		t.Fatalf("backup folder holds %d files, want 3 (no temporaries left)", len(des))
	}

	// Lose the database, make an empty one of the same name, restore.
	name := st.DatabaseName()
	st.Close()
	adminExec(t, "DROP DATABASE "+name+" WITH (FORCE)")
	adminExec(t, "CREATE DATABASE "+name)
	st2, err := store.Open(ctx, url, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	start = time.Now()
	rr, err := Restore(ctx, st2, res.Entry.Path, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore: %s", time.Since(start).Round(time.Millisecond))
	if !rr.Checked || rr.Migrated == nil || len(rr.Migrated.Applied) != 0 || len(rr.Migrated.RiverApplied) != 0 {
		t.Fatalf("restore result %+v (migrated %+v)", rr, rr.Migrated)
	}
	sameContents(t, before, contents(t, st2.Pool()))
	if s, err := st2.MigrationStatus(ctx); err != nil || !s.Current() {
		t.Fatalf("schema after restore: %v %v", s, err)
	}
}

func TestRestoreRefusesANonEmptyDatabaseUnlessForced(t *testing.T) {
	src, _ := migrated(t)
	fill(t, src)
	dir := t.TempDir()
	ctx := testCtx(t)
	res, err := Dump(ctx, src, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	want := contents(t, src.Pool())

	dst, err := store.Open(ctx, pg.NewDatabase(t), store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := dst.Pool().Exec(ctx, `CREATE TABLE precious (v text); INSERT INTO precious VALUES ('keep me')`); err != nil {
		t.Fatal(err)
	}
	_, err = Restore(ctx, dst, res.Entry.Path, RestoreOptions{})
	if !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), "--force") || !strings.Contains(err.Error(), "public.precious") {
		t.Fatalf("restore into a non-empty database: %v", err)
	}
	var v string
	if err := dst.Pool().QueryRow(ctx, "SELECT v FROM precious").Scan(&v); err != nil || v != "keep me" {
		t.Fatalf("the refused restore touched the database: %q %v", v, err)
	}

	rr, err := Restore(ctx, dst, res.Entry.Path, RestoreOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rr.Replaced) == 0 {
		t.Fatalf("--force did not report what it replaced: %+v", rr)
	}
	sameContents(t, want, contents(t, dst.Pool()))
}

func TestVerifyPassesAndIsRecorded(t *testing.T) {
	st, _ := migrated(t)
	fill(t, st)
	dir := t.TempDir()
	ctx := testCtx(t)
	svc := New(st, testConfig(dir), nil)
	if ok, detail := svc.Health(ctx); ok || !strings.Contains(detail, "no backup verified yet") {
		t.Fatalf("health before any backup: %v %s", ok, detail)
	}
	start := time.Now()
	if _, _, err := svc.Backup(ctx); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	start = time.Now()
	vr, err := svc.Verify(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup %s, verify %s (%d tables, %d rows, %d bytes)", took.Round(time.Millisecond),
		time.Since(start).Round(time.Millisecond), vr.Tables, vr.Rows, vr.Entry.Size)
	if vr.Tables < 5 || vr.Rows < 460 {
		t.Fatalf("verified %d tables, %d rows", vr.Tables, vr.Rows)
	}
	if ok, detail := svc.Health(ctx); !ok || !strings.Contains(detail, vr.Entry.Name()) {
		t.Fatalf("health after a passed verification: %v %s", ok, detail)
	}
	runs, err := st.LatestBackupRuns(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if runs.LastVerify == nil || !runs.LastVerify.OK || runs.LastVerify.File != vr.Entry.Name() || runs.LastVerify.Size != vr.Entry.Size {
		t.Fatalf("recorded verification %+v", runs.LastVerify)
	}
	if runs.LastBackup == nil || !runs.LastBackup.OK || runs.LastBackup.File != vr.Entry.Name() {
		t.Fatalf("recorded backup %+v", runs.LastBackup)
	}
	if left, _ := st.DatabasesLike(ctx, scratchPrefix); len(left) != 0 {
		t.Fatalf("scratch databases left behind: %v", left)
	}
	var sb strings.Builder
	if err := svc.WriteMetrics(ctx, &sb); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"debate_backup_healthy 1\n", "debate_backup_verify_last_ok 1\n", "debate_backup_files 1\n",
		fmt.Sprintf("debate_backup_last_size_bytes %g\n", float64(vr.Entry.Size))} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, sb.String())
		}
	}
}

// damage copies the backup under a new name (so the original stays good) and changes it.
func damage(t *testing.T, e Entry, name string, change func(b []byte) []byte) string {
	t.Helper()
	dst := filepath.Join(filepath.Dir(e.Path), name)
	for i, src := range e.Files() {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			b = change(b)
		}
		if err := os.WriteFile(filesOf(dst)[i], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestVerifyDetectsTruncatedAndCorruptedDumps(t *testing.T) {
	st, _ := migrated(t)
	fill(t, st)
	dir := t.TempDir()
	ctx := testCtx(t)
	svc := New(st, testConfig(dir), nil)
	res, _, err := svc.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	truncated := damage(t, res.Entry, "truncated.dump", func(b []byte) []byte { return b[:len(b)/2] })
	flipped := damage(t, res.Entry, "flipped.dump", func(b []byte) []byte {
		c := append([]byte(nil), b...)
		c[len(c)/2] ^= 0x10
		return c
	})
	for _, tc := range []struct {
		path, want string
	}{
		{truncated, "truncated"},
		{flipped, "the size"},
	} {
		_, err := svc.Verify(ctx, tc.path)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), filepath.Base(tc.path)) {
			t.Errorf("verify %s: %v; want ErrCorrupt saying %q", filepath.Base(tc.path), err, tc.want)
		}
		ok, detail := svc.Health(ctx)
		if ok || !strings.Contains(detail, "failed") || !strings.Contains(detail, filepath.Base(tc.path)) {
			t.Errorf("health after a failed verification: %v %s", ok, detail)
		}
		// Restore refuses it just the same, before touching anything.
		if _, err := Restore(ctx, st, tc.path, RestoreOptions{Force: true}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("restore %s: %v; want ErrCorrupt", filepath.Base(tc.path), err)
		}
	}
	if left, _ := st.DatabasesLike(ctx, scratchPrefix); len(left) != 0 {
		t.Fatalf("scratch databases left: %v", left)
	}
	// The good dump still verifies and health comes back.
	if _, err := svc.Verify(ctx, res.Entry.Path); err != nil {
		t.Fatal(err)
	}
	if ok, detail := svc.Health(ctx); !ok {
		t.Fatalf("health after a good verification: %s", detail)
	}
	runs, _ := st.LatestBackupRuns(ctx, dir)
	if runs.LastGoodVerify == nil {
		t.Fatal("no passed verification recorded")
	}
}

func TestVerifyDetectsRowCountAndSchemaMismatch(t *testing.T) {
	st, _ := migrated(t)
	fill(t, st)
	dir := t.TempDir()
	ctx := testCtx(t)
	res, err := Dump(ctx, st, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	// A manifest that remembers other counts than the dump holds: the dump's checksum
	// still matches, so only the restore and count can tell.
	m := res.Manifest
	m.Tables = map[string]int64{}
	for k, v := range res.Manifest.Tables {
		m.Tables[k] = v
	}
	m.Tables["app.speeches"]++
	delete(m.Tables, "public.layers")
	m.Tables["public.ghost"] = 3
	m.Schema.Debate++
	b, _ := json.Marshal(m)
	if err := os.WriteFile(manifestPath(res.Entry.Path), b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Verify(ctx, st, dir, "", "")
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("verify: %v; want ErrMismatch", err)
	}
	for _, want := range []string{"app.speeches has 451 rows, the manifest says 452", "public.layers is not in the manifest",
		"public.ghost is missing", "schema version is debate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if left, _ := st.DatabasesLike(ctx, scratchPrefix); len(left) != 0 {
		t.Fatalf("scratch databases left: %v", left)
	}
}

func TestIncompleteBackupsAreNeitherListedNorVerified(t *testing.T) {
	st, _ := migrated(t)
	dir := t.TempDir()
	ctx := testCtx(t)
	res, err := Dump(ctx, st, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	// What a crash between the renames would leave: a newer dump without its checksum.
	later := filepath.Join(dir, dumpFileName(res.Entry.Time.Add(time.Hour), 0))
	if err := os.WriteFile(later, []byte("PGDMP partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	newest, err := Newest(dir)
	if err != nil || newest.Path != res.Entry.Path {
		t.Fatalf("newest complete backup: %v %v; want %s", newest.Path, err, res.Entry.Path)
	}
	if _, err := Verify(ctx, st, dir, later, ""); !errors.Is(err, ErrIncomplete) || !strings.Contains(err.Error(), ".sha256") {
		t.Fatalf("verify of an incomplete backup: %v", err)
	}
	if _, err := Verify(ctx, st, t.TempDir(), "", ""); !errors.Is(err, ErrNoBackups) {
		t.Fatalf("verify in an empty folder: %v", err)
	}
}

func TestConcurrentBackupsDoNotCorruptEachOther(t *testing.T) {
	st, _ := migrated(t)
	fill(t, st)
	other, _ := migrated(t)
	fill(t, other)
	dir := t.TempDir()
	ctx := testCtx(t)

	// Deterministic first: while one backup holds the lock, another is refused clearly.
	snap, err := st.BeginDumpSnapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Dump(ctx, st, dir, "")
	snap.Close()
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "try again") {
		t.Fatalf("backup while another runs: %v; want ErrBusy", err)
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Fatalf("the refused backup left %d files", len(des))
	}

	// Then for real: three backups of one database and two of another, all at once,
	// into one folder. Each either completes or is refused; none is damaged.
	type outcome struct {
		res *DumpResult
		err error
		st  *store.Store
	}
	var wg sync.WaitGroup
	out := make([]outcome, 5)
	for i := range out {
		s := st
		if i >= 3 {
			s = other
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := Dump(ctx, s, dir, "")
			out[i] = outcome{r, err, s}
		}()
	}
	wg.Wait()
	names := map[string]bool{}
	done := map[*store.Store]int{}
	for i, o := range out {
		if o.err != nil {
			if !errors.Is(o.err, ErrBusy) {
				t.Fatalf("backup %d: %v", i, o.err)
			}
			continue
		}
		done[o.st]++
		if names[o.res.Entry.Name()] {
			t.Fatalf("two backups named %s", o.res.Entry.Name())
		}
		names[o.res.Entry.Name()] = true
		if got := fileSHA(t, o.res.Entry.Path); got != o.res.Manifest.SHA256 {
			t.Fatalf("backup %d: file sha256 %s, manifest %s", i, got, o.res.Manifest.SHA256)
		}
		if _, err := Verify(ctx, o.st, dir, o.res.Entry.Path, ""); err != nil {
			t.Fatalf("backup %d does not verify: %v", i, err)
		}
	}
	if done[st] < 1 || done[other] < 1 {
		t.Fatalf("completed backups per database: %d and %d; want at least one each", done[st], done[other])
	}
	entries, _ := List(dir)
	des, _ := os.ReadDir(dir)
	if len(entries) != len(names) || len(des) != 3*len(names) {
		t.Fatalf("folder holds %d files for %d backups (%d listed); temporaries left?", len(des), len(names), len(entries))
	}
	t.Logf("completed: %d of 3 and %d of 2", done[st], done[other])
}

// TestReadinessReportsBackups drives the API's readiness endpoint with backups on: not
// ready before any backup, ready after a backup and its verification (and /metrics says
// so), not ready again after a failed verification.
func TestReadinessReportsBackups(t *testing.T) {
	st, url := migrated(t)
	dir := t.TempDir()
	ctx := testCtx(t)
	vars := map[string]string{"DATABASE_URL": url, "DEBATE_BACKUP_DIR": dir}
	cfg, err := config.ParseServe([]string{"--ready-tools", "sh"}, func(n string) (string, bool) { v, ok := vars[n]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	svc := New(st, cfg.Backup, nil)
	srv, err := httpapi.New(cfg, httpapi.Deps{DB: st, Backups: svc})
	if err != nil {
		t.Fatal(err)
	}
	// Backups show in readiness, but a failing one degrades it rather than taking the
	// server out of its load balancer.
	ready := func() (int, string, map[string]json.RawMessage) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "http://localhost/api/v1/health/ready", nil)
		srv.Handler().ServeHTTP(rec, req)
		var body struct {
			Status string                     `json:"status"`
			Checks map[string]json.RawMessage `json:"checks"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
		}
		return rec.Code, body.Status, body.Checks
	}
	code, status, checks := ready()
	if code != 200 || status != "degraded" || !strings.Contains(string(checks["backups"]), `"ok":false`) || !strings.Contains(string(checks["backups"]), "no backup taken yet") {
		t.Fatalf("before any backup: %d %s %s", code, status, checks["backups"])
	}
	res, _, err := svc.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, ""); err != nil {
		t.Fatal(err)
	}
	code, status, checks = ready()
	if code != 200 || status != "ready" || !strings.Contains(string(checks["backups"]), `"ok":true`) {
		t.Fatalf("after backup and verification: %d %s %s", code, status, checks)
	}
	rec := httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
	for _, want := range []string{"\ndebate_backup_healthy 1\n", "\ndebate_backup_verify_last_ok 1\n", "\ndebate_backup_files 1\n"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q:\n%s", strings.TrimSpace(want), rec.Body)
		}
	}
	flipped := damage(t, res.Entry, "flipped.dump", func(b []byte) []byte { b[100] ^= 4; return b })
	if _, err := svc.Verify(ctx, flipped); err == nil {
		t.Fatal("damaged dump verified")
	}
	code, status, checks = ready()
	if code != 200 || status != "degraded" || !strings.Contains(string(checks["backups"]), "corrupted") {
		t.Fatalf("after a failed verification: %d %s %s", code, status, checks["backups"])
	}
	rec = httptest.NewRecorder()
	srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/metrics", nil))
	if !strings.Contains(rec.Body.String(), "\ndebate_backup_healthy 0\n") {
		t.Errorf("/metrics does not report the failed verification:\n%s", rec.Body)
	}
}

func TestDumpNamesNeverCollide(t *testing.T) {
	st, _ := migrated(t)
	dir := t.TempDir()
	ctx := testCtx(t)
	// Names for the next few seconds are taken (another database's backups, say).
	now := time.Now().UTC()
	var taken []string
	for i := -1; i < 10; i++ {
		p := filepath.Join(dir, dumpFileName(now.Add(time.Duration(i)*time.Second), 0))
		if err := os.WriteFile(p, []byte("someone else's"), 0o600); err != nil {
			t.Fatal(err)
		}
		taken = append(taken, p)
	}
	res, err := Dump(ctx, st, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(res.Entry.Name(), "-1.dump") || res.Manifest.File != res.Entry.Name() {
		t.Fatalf("dump named %s (manifest %s); want the -1 suffix", res.Entry.Name(), res.Manifest.File)
	}
	for _, p := range taken {
		if b, _ := os.ReadFile(p); string(b) != "someone else's" {
			t.Fatalf("%s was overwritten", p)
		}
	}
	if _, err := Verify(ctx, st, dir, "", ""); err != nil {
		t.Fatalf("the suffixed dump (the newest complete one) does not verify: %v", err)
	}
}

// TestRestoreOfAnOlderSchemaMigrates restores a dump taken before the newer migrations
// existed: restore brings the schema up to this binary's.
func TestRestoreOfAnOlderSchemaMigrates(t *testing.T) {
	ctx := testCtx(t)
	baseline, err := os.ReadFile("../store/migrations/0001_baseline.sql")
	if err != nil {
		t.Fatal(err)
	}
	src, err := store.Open(ctx, pg.NewDatabase(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	old, err := store.NewMigrator(src.Pool(), fstest.MapFS{"0001_baseline.sql": {Data: baseline}}, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := Dump(ctx, src, t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Schema.Debate != 1 {
		t.Fatalf("old schema recorded as %v", res.Manifest.Schema)
	}
	dst, err := store.Open(ctx, pg.NewDatabase(t), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	rr, err := Restore(ctx, dst, res.Entry.Path, RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rr.Checked || len(rr.Migrated.Applied) == 0 || !slices.Contains(rr.Migrated.Applied, "0003_backups") {
		t.Fatalf("restore of an old dump: checked %v, migrations applied %v", rr.Checked, rr.Migrated.Applied)
	}
	if st, err := dst.MigrationStatus(ctx); err != nil || !st.Current() {
		t.Fatalf("schema after restore: %v %v", st, err)
	}
}

// TestRunsAreJudgedPerFolder: the server judges only runs of its own backup folder. A
// failed verification of a damaged copy elsewhere, or of a mistyped path, leaves it
// healthy; a backup and verification in another folder do not make another server's
// empty folder look backed up.
func TestRunsAreJudgedPerFolder(t *testing.T) {
	st, _ := migrated(t)
	fill(t, st)
	ctx := testCtx(t)
	serverDir, offsite := t.TempDir(), t.TempDir()
	svc := New(st, testConfig(serverDir), nil)
	res, _, err := svc.Backup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Verify(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if ok, detail := svc.Health(ctx); !ok {
		t.Fatalf("healthy after backup and verification: %s", detail)
	}

	// The off-site copy is damaged; verifying it (as `debate backup verify FILE` does,
	// with the server's settings) fails, and is recorded against the copy's folder.
	copied := Entry{Path: filepath.Join(offsite, res.Entry.Name())}
	for i, src := range res.Entry.Files() {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			b = b[:len(b)/2]
		}
		if err := os.WriteFile(copied.Files()[i], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.Verify(ctx, copied.Path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify of the damaged copy: %v", err)
	}
	if _, err := svc.Verify(ctx, filepath.Join(offsite, "typo.dump")); err == nil {
		t.Fatal("verify of a missing file passed")
	}
	if ok, detail := svc.Health(ctx); !ok {
		t.Fatalf("the server's folder judged by runs elsewhere: %s", detail)
	}
	offsiteRuns, err := st.LatestBackupRuns(ctx, offsite)
	if err != nil || offsiteRuns.LastVerify == nil || offsiteRuns.LastVerify.OK {
		t.Fatalf("the failed verification is not recorded against %s: %+v %v", offsite, offsiteRuns.LastVerify, err)
	}

	// Another server's folder, still empty, is not backed up by this one's runs.
	other := New(st, testConfig(t.TempDir()), nil)
	if ok, detail := other.Health(ctx); ok || !strings.Contains(detail, "no backup taken yet") {
		t.Fatalf("an empty folder judged healthy: %v %s", ok, detail)
	}
}

// TestStoppedRunsSayWhy: a backup cut short by its time limit names the setting, and
// one cut short by an interruption says so, instead of "context deadline exceeded".
func TestStoppedRunsSayWhy(t *testing.T) {
	st, _ := migrated(t)
	cfg := testConfig(t.TempDir())
	cfg.Timeout = time.Nanosecond
	_, _, err := New(st, cfg, nil).Backup(testCtx(t))
	if err == nil || !strings.Contains(err.Error(), "took longer than --backup-timeout (1ns)") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timed-out backup: %v", err)
	}
	svc := New(st, testConfig(t.TempDir()), nil)
	if _, _, err := svc.Backup(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	cancel()
	_, err = svc.Verify(ctx, "")
	if err == nil || !strings.HasPrefix(err.Error(), "backup: interrupted: ") || !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted verification: %v", err)
	}
}
