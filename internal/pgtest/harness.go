package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"debate/internal/testenv"
)

// Harness shares one cluster between all the tests of a package: starting a cluster
// takes about a second, a fresh database in it a few milliseconds.
//
//	var pg pgtest.Harness
//	func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }
//	func TestX(t *testing.T) { url := pg.NewDatabase(t) ... }
type Harness struct {
	cluster *Cluster
	err     error
	n       atomic.Int64

	mu        sync.Mutex
	templates map[string]error // prepared template databases, and how preparing went
}

// Run starts the cluster, runs the tests and stops the cluster. It returns the exit code
// for os.Exit. A cluster that cannot start does not stop the run: each test that needs it
// then fails (or, outside CI when PostgreSQL is simply not installed, skips).
func (h *Harness) Run(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	h.cluster, h.err = Start(ctx, Options{})
	cancel()
	code := m.Run()
	if h.cluster != nil {
		if err := h.cluster.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return code
}

// Cluster returns the shared cluster. Without one the test fails, except that outside CI
// (CI unset or not "true") a machine without PostgreSQL installed skips the test.
func (h *Harness) Cluster(t testing.TB) *Cluster {
	t.Helper()
	if h.cluster != nil {
		return h.cluster
	}
	err := h.err
	if err == nil {
		err = errors.New("pgtest: Harness.Run was not called from TestMain")
	}
	if errors.Is(err, ErrNoBinaries) && !testenv.InCI() {
		t.Skipf("needs PostgreSQL: %v", err)
	}
	t.Fatalf("needs PostgreSQL: %v", err)
	return nil
}

// NewDatabase creates an empty database for this test and returns its connection URL.
func (h *Harness) NewDatabase(t testing.TB) string {
	t.Helper()
	c := h.Cluster(t)
	name := fmt.Sprintf("t%d_%d", os.Getpid(), h.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A test that stopped the cluster gives it back running to the next one.
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	u, err := c.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// NewDatabaseFrom creates a database for this test as a copy of the template database
// called template, which prepare fills (e.g. migrates) the first time it is asked for.
// Copying a migrated template takes milliseconds where migrating takes a good part of a
// second. prepare must close its connections: PostgreSQL copies only idle templates.
func (h *Harness) NewDatabaseFrom(t testing.TB, template string, prepare func(url string) error) string {
	t.Helper()
	c := h.Cluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	err, done := h.templates[template]
	if !done {
		var url string
		url, err = c.CreateDatabase(ctx, template)
		if err == nil {
			err = prepare(url)
		}
		if h.templates == nil {
			h.templates = map[string]error{}
		}
		h.templates[template] = err
	}
	h.mu.Unlock()
	if err != nil {
		t.Fatalf("pgtest: template %s: %v", template, err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), h.n.Add(1))
	u, err := c.CreateDatabaseFrom(ctx, name, template)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// StartForTest starts a cluster of the test's own, stopped and removed when the test
// ends; for packages that need a database in one or two tests and no TestMain. The same
// rules apply as for Harness: outside CI a missing PostgreSQL skips, otherwise it fails.
func StartForTest(t testing.TB) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{})
	if err != nil {
		if errors.Is(err, ErrNoBinaries) && !testenv.InCI() {
			t.Skipf("needs PostgreSQL: %v", err)
		}
		t.Fatalf("needs PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}
