package resolve

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"debate/internal/catalog"
	"debate/internal/debian"
)

// The real bookworm index, loaded once per test binary: DEBATE_TEST_CACHE/index (make test
// sets it) or a folder in the temporary directory keeps it between runs.
func testIndexDir() string {
	if d := os.Getenv("DEBATE_TEST_CACHE"); d != "" {
		return filepath.Join(d, "index")
	}
	return filepath.Join(os.TempDir(), "debate-test-cache", "index")
}

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
	if _, err := exec.LookPath("gpgv"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("gpgv is needed: %v", err)
		}
		t.Skipf("no gpgv: %v", err)
	}
	l, err := realIndex()
	if err != nil {
		if os.Getenv("CI") != "true" && errors.Is(err, debian.ErrMirrorUnreachable) {
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
