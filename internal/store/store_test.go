package store

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"debate/internal/pgtest"
)

var pg pgtest.Harness

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), pg.NewDatabase(t), Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestMigrateTwiceIsNoOp(t *testing.T) {
	s := open(t)
	st, err := s.MigrationStatus(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Current() || len(st.Pending) == 0 || len(st.River) == 0 {
		t.Fatalf("fresh database reported as %v", st)
	}

	first, err := s.Migrate(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Applied) == 0 || first.Applied[0] != "0001_baseline" || len(first.RiverApplied) == 0 {
		t.Fatalf("first run applied %+v", first)
	}
	second, err := s.Migrate(ctx(t))
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if len(second.Applied) != 0 || len(second.RiverApplied) != 0 {
		t.Fatalf("second run applied %+v; want nothing", second)
	}
	st, err = s.MigrationStatus(ctx(t))
	if err != nil || !st.Current() {
		t.Fatalf("after migrate: %v, %v", st, err)
	}
	// River's tables are there for later work to enqueue jobs.
	var n int
	if err := s.Pool().QueryRow(ctx(t), "SELECT count(*) FROM river_job").Scan(&n); err != nil {
		t.Fatalf("river_job: %v", err)
	}
}

func TestConcurrentMigrateAppliesOnce(t *testing.T) {
	url := pg.NewDatabase(t)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	results := make([]*MigrateResult, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), url, Options{})
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			results[i], errs[i] = s.Migrate(ctx(t))
		}()
	}
	wg.Wait()
	applied := map[string]int{}
	for i := range 3 {
		if errs[i] != nil {
			t.Fatalf("migrator %d: %v", i, errs[i])
		}
		for _, id := range results[i].Applied {
			applied[id]++
		}
	}
	all, err := LoadMigrations(mustSub(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if applied[m.ID()] != 1 {
			t.Fatalf("%s applied %d times across concurrent migrators", m.ID(), applied[m.ID()])
		}
	}
}

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	s := open(t)
	fsys := fstest.MapFS{
		"0001_widgets.sql": {Data: []byte("CREATE TABLE widgets (id int PRIMARY KEY);")},
		"0002_broken.sql":  {Data: []byte("CREATE TABLE gadgets (id int); INSERT INTO nowhere VALUES (1);")},
	}
	m, err := NewMigrator(s.Pool(), fsys, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Migrate(ctx(t))
	if err == nil || !strings.Contains(err.Error(), "0002_broken") {
		t.Fatalf("want failure naming 0002_broken, got %v", err)
	}
	if len(res.Applied) != 1 || res.Applied[0] != "0001_widgets" {
		t.Fatalf("applied %v", res.Applied)
	}
	var gadgets bool
	if err := s.Pool().QueryRow(ctx(t), "SELECT to_regclass('gadgets') IS NOT NULL").Scan(&gadgets); err != nil || gadgets {
		t.Fatalf("half of the failed migration stayed: gadgets exists=%v err=%v", gadgets, err)
	}
	st, err := m.Status(ctx(t))
	if err != nil || st.Current() || strings.Join(st.Pending, ",") != "0002_broken" {
		t.Fatalf("status %v, %v", st, err)
	}

	// Fixing the pending file is fine; editing an applied one is refused.
	fsys["0002_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE gadgets (id int);")}
	m, _ = NewMigrator(s.Pool(), fsys, false, nil)
	if _, err := m.Migrate(ctx(t)); err != nil {
		t.Fatalf("after fix: %v", err)
	}
	fsys["0001_widgets.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE widgets (id bigint PRIMARY KEY);")}
	m, _ = NewMigrator(s.Pool(), fsys, false, nil)
	if _, err := m.Migrate(ctx(t)); !errors.Is(err, ErrMigrationChanged) {
		t.Fatalf("edited applied migration: %v", err)
	}
	st, err = m.Status(ctx(t))
	if err != nil || st.Current() || strings.Join(st.Changed, ",") != "0001_widgets" {
		t.Fatalf("status %v, %v", st, err)
	}

	// A database migrated by a newer binary is not current for an older one.
	old, _ := NewMigrator(s.Pool(), fstest.MapFS{"0001_widgets.sql": {Data: []byte("CREATE TABLE widgets (id int PRIMARY KEY);")}}, false, nil)
	st, err = old.Status(ctx(t))
	if err != nil || st.Current() || len(st.Unknown) != 1 || st.Unknown[0] != 2 {
		t.Fatalf("older binary status %v, %v", st, err)
	}
}

func TestBadMigrationFiles(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"misnamed":  {"1_init.sql": {Data: []byte("SELECT 1")}},
		"duplicate": {"0001_a.sql": {Data: []byte("SELECT 1")}, "0001_b.sql": {Data: []byte("SELECT 1")}},
		"zero":      {"0000_a.sql": {Data: []byte("SELECT 1")}},
	} {
		if _, err := LoadMigrations(fsys); !errors.Is(err, ErrBadMigration) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestPingAndUnavailable(t *testing.T) {
	s := open(t)
	r, err := s.Ping(ctx(t))
	if err != nil || r.RoundTrip <= 0 {
		t.Fatalf("ping: %+v %v", r, err)
	}
	c := pg.Cluster(t)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
	}()
	if _, err := s.Ping(ctx(t)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("ping with the database stopped: %v", err)
	}
}

func TestOpenRejectsBadURLWithoutLeakingIt(t *testing.T) {
	_, err := Open(context.Background(), "postgres://u:hunter2@h:bad/db", Options{})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error %v", err)
	}
}

func mustSub(t *testing.T) fs.FS {
	sub, err := fs.Sub(embedded, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	return sub
}
