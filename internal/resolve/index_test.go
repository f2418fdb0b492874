package resolve

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"debate/internal/catalog"
	"debate/internal/debian"
	"debate/internal/testenv"
)

// The real bookworm index, loaded once per test binary; the test cache keeps it between
// runs.
func testIndexDir() string { return filepath.Join(testenv.CacheRoot(), "index") }

var realIndex = sync.OnceValues(func() (*debian.Loaded, error) {
	dir := testIndexDir()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := &debian.Archive{Suites: debian.DefaultSuites("", "", "bookworm"), CacheDir: dir, MaxAge: 6 * time.Hour}
	return a.Load(ctx)
})

// indexOrSkip returns the real index; without network or gpgv it skips, or fails under
// CI=true.
func indexOrSkip(t testing.TB) *debian.Index {
	t.Helper()
	testenv.Need(t, "gpgv", testenv.Tool("gpgv", "gpgv"))
	l, err := realIndex()
	if err != nil {
		if !testenv.InCI() && errors.Is(err, debian.ErrMirrorUnreachable) {
			t.Skipf("no network: %v", err)
		}
		t.Fatalf("loading the bookworm index: %v", err)
	}
	return l.Index
}

func realChecker(t testing.TB) *Checker {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	return NewChecker(cat, indexOrSkip(t), "Debian bookworm (amd64, main)")
}
