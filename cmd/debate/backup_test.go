package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"debate/internal/pgtest"
	"debate/internal/store"
)

// TestBackupVerifyRestoreCommands runs the commands as an operator would, through their
// flags and variables, on a real PostgreSQL.
func TestBackupVerifyRestoreCommands(t *testing.T) {
	cluster := pgtest.StartForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srcURL, err := cluster.CreateDatabase(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, srcURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Pool().Exec(ctx, `CREATE TABLE notes (id serial PRIMARY KEY, body text);
		INSERT INTO notes (body) SELECT 'note ' || i FROM generate_series(1, 42) i`); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "backups")
	t.Setenv("DATABASE_URL", srcURL)
	t.Setenv("DEBATE_BACKUP_DIR", dir)

	run := func(cmd func(context.Context, []string, io.Writer, io.Writer) int, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cmd(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}

	code, out, errs := run(runBackup)
	if code != 0 || !strings.Contains(out, "backup written: "+dir) || !strings.Contains(out, "sha256 ") {
		t.Fatalf("debate backup: exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run(runBackup, "list")
	if code != 0 || strings.Count(out, ".dump") != 1 {
		t.Fatalf("debate backup list: exit %d\n%s\n%s", code, out, errs)
	}
	dump := strings.Fields(out)[len(strings.Fields(out))-1]
	code, out, errs = run(runBackup, "verify")
	if code != 0 || !strings.Contains(out, "verified "+dump) || !strings.Contains(out, "match the manifest") {
		t.Fatalf("debate backup verify: exit %d\n%s\n%s", code, out, errs)
	}

	// A damaged copy: verify names the problem and fails.
	bad := filepath.Join(dir, "copy.dump")
	b, _ := os.ReadFile(dump)
	b[len(b)/3] ^= 1
	os.WriteFile(bad, b, 0o600)
	for _, suffix := range []string{".json", ".sha256"} {
		c, _ := os.ReadFile(dump + suffix)
		os.WriteFile(bad+suffix, c, 0o600)
	}
	t.Setenv("DEBATE_BACKUP_DIR", "") // verify FILE needs no folder
	code, _, errs = run(runBackup, "verify", bad)
	if code != 1 || !strings.Contains(errs, "FAILED") || !strings.Contains(errs, "corrupted") {
		t.Fatalf("verify of a damaged dump: exit %d\n%s", code, errs)
	}

	// Restore: refused into the non-empty source, done into a new empty database.
	code, _, errs = run(runRestore, dump)
	if code != 1 || !strings.Contains(errs, "not empty") || !strings.Contains(errs, "--force") {
		t.Fatalf("restore into a non-empty database: exit %d\n%s", code, errs)
	}
	dstURL, err := cluster.CreateDatabase(ctx, "fresh")
	if err != nil {
		t.Fatal(err)
	}
	code, out, errs = run(runRestore, dump, "--database-url", dstURL)
	if code != 0 || !strings.Contains(out, "match the manifest") || !strings.Contains(out, "schema is current") {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
	}
	dst, err := store.Open(ctx, dstURL, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	var n int
	var last string
	if err := dst.Pool().QueryRow(ctx, "SELECT count(*), max(body) FROM notes").Scan(&n, &last); err != nil || n != 42 || last != "note 9" {
		t.Fatalf("restored notes: %d %q %v", n, last, err)
	}

	// A dump made by hand has neither checksum file nor manifest: restore says how to
	// take it anyway, and then that nothing about its content was checked.
	bare := filepath.Join(t.TempDir(), "by-hand.dump")
	b, _ = os.ReadFile(dump)
	os.WriteFile(bare, b, 0o600)
	bareURL, err := cluster.CreateDatabase(ctx, "bare")
	if err != nil {
		t.Fatal(err)
	}
	code, _, errs = run(runRestore, bare, "--database-url", bareURL)
	if code != 1 || !strings.Contains(errs, "no checksum file") || !strings.Contains(errs, "--skip-checksum") {
		t.Fatalf("restore of a dump without a checksum: exit %d\n%s", code, errs)
	}
	code, _, errs = run(runRestore, bare, "--database-url", bareURL, "--skip-checksum")
	if code != 0 || !strings.Contains(errs, "nothing about the dump's content was checked") {
		t.Fatalf("restore --skip-checksum: exit %d\n%s", code, errs)
	}

	// A mistyped folder is an error, not an empty list.
	if code, _, errs = run(runBackup, "list", "--dir", dir+"-typo"); code != 1 || !strings.Contains(errs, "does not exist") {
		t.Fatalf("list of a missing folder: exit %d %s", code, errs)
	}

	// Usage errors are exit 2 and name the problem.
	if code, _, errs = run(runRestore); code != 2 || !strings.Contains(errs, "debate restore FILE") {
		t.Fatalf("restore without a file: exit %d %s", code, errs)
	}
	if code, _, errs = run(runBackup, "rewind"); code != 2 || !strings.Contains(errs, "unknown subcommand") {
		t.Fatalf("unknown subcommand: exit %d %s", code, errs)
	}
}
