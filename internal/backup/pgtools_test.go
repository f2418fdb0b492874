package backup

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"debate/internal/pgtest"
)

func TestLibpqEnvKeepsThePasswordOffTheCommandLine(t *testing.T) {
	t.Setenv("PGTZ", "Asia/Tokyo") // the caller's shell settings must not reach the tools
	env, err := libpqEnv("postgres://deb%40ate:s3cr%20t@db.example.org:6543/prod?sslmode=require&connect_timeout=7&pool_max_conns=7", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PGHOST=db.example.org", "PGPORT=6543", "PGUSER=deb@ate", "PGPASSWORD=s3cr t",
		"PGDATABASE=prod", "PGSSLMODE=require", "PGCONNECT_TIMEOUT=7"} {
		if !slices.Contains(env, want) {
			t.Errorf("environment lacks %s", want)
		}
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "PGTZ=") || strings.Contains(kv, "pool_max_conns") {
			t.Errorf("environment has %s", kv)
		}
	}

	env, err = libpqEnv(`host=/run/pg user=debate password='it\'s quoted' dbname=x sslmode=disable`, "scratch")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PGHOST=/run/pg", "PGDATABASE=scratch", "PGSSLMODE=disable", "PGPASSWORD=it's quoted"} {
		if !slices.Contains(env, want) {
			t.Errorf("keyword form: environment lacks %s: %v", want, env)
		}
	}
	if _, err := libpqEnv("postgres://[::1", ""); err == nil {
		t.Fatal("a broken URL was accepted")
	}
	if got := conninfoDB(`we'ird\db`); got != `dbname='we\'ird\\db'` {
		t.Fatalf("conninfoDB: %s", got)
	}
}

func TestFindToolsRefusesAnOlderClient(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, name := range []string{"pg_dump", "pg_restore"} {
		script := "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, err := findTools(ctx, dir, 15)
	if !errors.Is(err, ErrToolMissing) || !strings.Contains(err.Error(), "postgresql-client-15") {
		t.Fatalf("an old client: %v", err)
	}
	_, err = findTools(ctx, filepath.Join(dir, "missing"), 15)
	if !errors.Is(err, ErrToolMissing) || !strings.Contains(err.Error(), "--pg-bin") {
		t.Fatalf("a missing folder: %v", err)
	}
	// The machine's own tools are found for its server version (the Debian layout).
	pg.Cluster(t) // skips, or fails under CI=true, without PostgreSQL installed
	bin, err := pgtest.FindBinDir()
	if err != nil {
		t.Fatal(err)
	}
	major, _ := strconv.Atoi(filepath.Base(filepath.Dir(bin)))
	tl, err := findTools(ctx, "", major)
	if err != nil {
		t.Fatalf("this machine's PostgreSQL %d client: %v", major, err)
	}
	if tl.major < major || major == 0 {
		t.Fatalf("for server %d found %+v", major, tl)
	}
}
