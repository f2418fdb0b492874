// Package testenv holds what Debate's tests share about the machine they run on. A test
// that needs something the machine lacks (a tool, the sandbox, PostgreSQL, the network)
// fails under CI=true, where everything must be present so that a missing tool can never
// pass as a skipped test, and skips elsewhere, saying what is missing and how to get it.
// Caches kept between runs live under DEBATE_TEST_CACHE (set by make test).
package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true), where nothing may be skipped for
// lack of a tool.
func InCI() bool { return os.Getenv("CI") == "true" }

// Need stops t when any of problems is not nil: it fails under CI and skips elsewhere,
// naming what for ("the sandbox", "QEMU") and every problem. Nil problems are ignored,
// so a test lists its checks directly: Need(t, "the builder", sandbox.Available(), …).
func Need(t testing.TB, what string, problems ...error) {
	t.Helper()
	var msgs []string
	for _, p := range problems {
		if p != nil {
			msgs = append(msgs, p.Error())
		}
	}
	if len(msgs) == 0 {
		return
	}
	if InCI() {
		t.Fatalf("%s unavailable, and CI=true must have it: %s", what, strings.Join(msgs, "; "))
	}
	t.Skipf("%s unavailable: %s", what, strings.Join(msgs, "; "))
}

// Tool is nil when the named program is on PATH, else an error saying which package to
// install for it.
func Tool(name, pkg string) error {
	if _, err := exec.LookPath(name); err != nil {
		return fmt.Errorf("%s not found (install the %s package)", name, pkg)
	}
	return nil
}

// File is nil when path exists, else an error saying which package to install for it.
func File(path, pkg string) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("%s not found (install the %s package)", path, pkg)
	}
	return nil
}

// Missing turns a list of missing tools into one problem (nil for none).
func Missing(tools []string) error {
	if len(tools) == 0 {
		return nil
	}
	return errors.New("missing tools: " + strings.Join(tools, ", ") + " (install them with make deps)")
}

// CacheDir is the folder sub of the test cache kept between runs: DEBATE_TEST_CACHE
// (make test sets it), else debate-test-cache in the system's temporary directory. It is
// created.
func CacheDir(t testing.TB, sub ...string) string {
	t.Helper()
	dir := CacheRoot()
	dir = filepath.Join(append([]string{dir}, sub...)...)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// CacheRoot is the test cache folder, for code that runs outside a test (loading an
// index once per test binary); it is not created.
func CacheRoot() string {
	if d := os.Getenv("DEBATE_TEST_CACHE"); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "debate-test-cache")
}

// Buffer is a bytes.Buffer safe for concurrent use: a server's or a child process's log,
// written by its goroutines and read by the test.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
