package builder

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"debate/internal/bootcheck"
	"debate/internal/recipe"
	"debate/internal/sandbox"
	"debate/internal/testenv"
)

// These tests run the real pipeline: apt against the real mirror, mmdebstrap, mksquashfs,
// xorriso and QEMU. They share one package cache per run (DEBATE_TEST_CACHE, set by
// `make test`) so that only the first build downloads.

func requireBuilder(t *testing.T) {
	t.Helper()
	testenv.Need(t, "the builder", sandbox.Available(), testenv.Missing(MissingTools()))
}

func testCache(t *testing.T) string { return testenv.CacheDir(t) }

func loadRecipe(t *testing.T, path string) *recipe.Recipe { return loadRecipeB(t, path) }

func loadRecipeB(t testing.TB, path string) *recipe.Recipe {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Parse(data, recipe.Auto)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return r
}

// eventLog collects a build's events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

func (l *eventLog) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, e := range l.events {
		fmt.Fprintf(&b, "%s %s %s\n", e.Type, e.Stage, e.Message)
	}
	return b.String()
}

func TestMinimalReproducibleAndBoots(t *testing.T) {
	requireBuilder(t)
	if err := bootcheck.Available(); err != nil && testenv.InCI() {
		t.Fatalf("boot test tools missing under CI: %v", err)
	}
	r := loadRecipe(t, "../../examples/minimal.yaml")
	out := t.TempDir()
	var ev eventLog
	res, err := Verify(context.Background(), Options{
		Recipe: r, OutDir: out, CacheDir: testCache(t), Events: ev.add,
	})
	if err != nil {
		t.Fatalf("verify build: %v\nevents:\n%s", err, lastLines(ev.text(), 60))
	}
	t.Logf("ISO %s: %d bytes, sha256 %s, %.0fs (both builds identical)", res.ISO.Path, res.ISO.Size, res.ISO.SHA256, res.Seconds)

	// Both builds reported every stage, in order, with start and end.
	var starts []string
	cacheHit := false
	for _, e := range ev.events {
		if e.Type == EventStageStart {
			starts = append(starts, e.Stage)
		}
		if e.Type == EventProgress && e.Stage == StageDownload && strings.Contains(e.Message, "already in the cache") {
			cacheHit = true
		}
	}
	want := strings.Join(append(Stages, Stages...), ",")
	if got := strings.Join(starts, ","); got != want {
		t.Errorf("stage order:\n got %s\nwant %s", got, want)
	}
	if !cacheHit {
		t.Error("the second build did not take its packages from the cache")
	}

	// Published set: ISO, manifest, checksums, and nothing half-written.
	entries, _ := os.ReadDir(out)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, " "); got != "minimal.SHA256SUMS minimal.iso minimal.manifest.json" {
		t.Fatalf("output directory holds %q", got)
	}
	sums, _ := os.ReadFile(filepath.Join(out, "minimal.SHA256SUMS"))
	if !strings.Contains(string(sums), res.ISO.SHA256+"  minimal.iso") {
		t.Fatalf("SHA256SUMS does not list the ISO: %s", sums)
	}
	m, err := ReadManifest(filepath.Join(out, "minimal.manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if m.BuildKey != res.BuildKey || m.RecipeHash != r.Hash() || m.SourceDateEpoch == 0 || len(m.Pinned.Suites) != 3 {
		t.Fatalf("manifest header wrong: key %s recipe %s sde %d suites %v", m.BuildKey, m.RecipeHash, m.SourceDateEpoch, m.Pinned.Suites)
	}
	installed := map[string]bool{}
	for _, p := range m.Packages {
		installed[p.Name] = true
	}
	for _, p := range []string{"less", "nano", "iproute2", "linux-image-amd64", "live-boot", "sudo"} {
		if !installed[p] {
			t.Errorf("manifest: package %s not installed", p)
		}
	}

	// The image boots to a login prompt in both firmware modes.
	for _, fw := range []bootcheck.Firmware{bootcheck.FirmwareBIOS, bootcheck.FirmwareUEFI} {
		br, err := bootcheck.Boot(context.Background(), bootcheck.Options{ISO: res.ISO.Path, Firmware: fw})
		if err != nil || !br.Passed {
			t.Fatalf("boot %s: %v\nconsole:\n%s", fw, err, strings.Join(br.ConsoleTail, "\n"))
		}
		if !strings.HasPrefix(br.LoginPrompt, "minimal login:") {
			t.Errorf("boot %s: login prompt %q does not name the recipe's hostname", fw, br.LoginPrompt)
		}
		t.Logf("boot %s (%s): login prompt after %s", fw, br.Accel, br.Elapsed.Round(time.Second))
	}
}

// hostileRecipe is a small recipe whose script attacks the sandbox.
func hostileRecipe(t *testing.T, name string, scripts ...recipe.Script) *recipe.Recipe {
	t.Helper()
	r := loadRecipe(t, "../../examples/minimal.yaml")
	r.Name = name
	r.Packages = nil
	r.Users = nil
	r.Files = nil
	r.Scripts = scripts
	return r
}

func TestHostileRecipesAreContained(t *testing.T) {
	requireBuilder(t)
	cache := testCache(t)

	// A secret outside the build's work directory, and a listener on the host.
	secretDir := t.TempDir()
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	secret := "debate-secret-" + hex.EncodeToString(token)
	secretPath := filepath.Join(secretDir, "secret.txt")
	if err := os.WriteFile(secretPath, []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var connections int
	var connMu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			connMu.Lock()
			connections++
			connMu.Unlock()
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	cases := []struct {
		name     string
		scripts  []recipe.Script
		opts     func(*Options)
		wantCode string
		wantErr  error
		check    func(t *testing.T, log string)
	}{
		{
			name: "escape",
			scripts: []recipe.Script{
				{Name: "read-host-file", Run: fmt.Sprintf("cat %s /proc/1/root%s 2>&1 || echo 'host file: unreadable'; true", secretPath, secretPath)},
				{Name: "open-network", Run: fmt.Sprintf("if (exec 3<>/dev/tcp/127.0.0.1/%d) 2>/dev/null; then echo 'network: CONNECTED'; else echo 'network: unreachable'; fi", port)},
				{Name: "stop-here", Run: "exit 3"},
			},
			wantCode: "script_failed", wantErr: ErrScriptFailed,
			check: func(t *testing.T, log string) {
				if strings.Contains(log, secret) {
					t.Error("the host secret reached the build log")
				}
				if !strings.Contains(log, "host file: unreadable") || !strings.Contains(log, "network: unreachable") || strings.Contains(log, "network: CONNECTED") {
					t.Errorf("scripts did not report containment:\n%s", lastLines(log, 30))
				}
				connMu.Lock()
				defer connMu.Unlock()
				if connections != 0 {
					t.Errorf("the sandbox connected to the host %d time(s)", connections)
				}
			},
		},
		{
			name:     "fork-bomb",
			scripts:  []recipe.Script{{Name: "fork-bomb", Run: "b() { b | b & }; b; sleep 5"}},
			opts:     func(o *Options) { o.Limits.Pids = 512 },
			wantCode: "process_limit", wantErr: ErrProcessLimit,
		},
		{
			name:     "memory",
			scripts:  []recipe.Script{{Name: "allocate", Run: "dd if=/dev/zero of=/dev/null bs=3G count=1"}},
			opts:     func(o *Options) { o.Limits.MemoryBytes = 1536 << 20 },
			wantCode: "memory_limit", wantErr: ErrMemoryLimit,
		},
		{
			name:     "disk",
			scripts:  []recipe.Script{{Name: "fill-disk", Run: "dd if=/dev/zero of=/var/fill bs=1M count=8000"}},
			opts:     func(o *Options) { o.DiskLimit = 2 << 30 },
			wantCode: "disk_full", wantErr: ErrDiskFull,
		},
		{
			name:     "sleep",
			scripts:  []recipe.Script{{Name: "sleep-forever", Run: "sleep 3600"}},
			opts:     func(o *Options) { o.ScriptTimeout = 15 * time.Second },
			wantCode: "timeout", wantErr: ErrTimeout,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out := t.TempDir()
			var ev eventLog
			var log strings.Builder
			workDir := t.TempDir()
			o := Options{Recipe: hostileRecipe(t, "hostile-"+c.name, c.scripts...), OutDir: out, CacheDir: cache, WorkDir: workDir, Events: ev.add, Log: &syncWriter{w: &log}}
			if c.opts != nil {
				c.opts(&o)
			}
			start := time.Now()
			_, err := Build(context.Background(), o)
			var be *Error
			if !errors.As(err, &be) {
				t.Fatalf("want a classified build error, got %v", err)
			}
			t.Logf("%s: failed after %s with %s: %s", c.name, time.Since(start).Round(time.Second), be.Info.Code, be.Info.Message)
			if be.Info.Code != c.wantCode || !errors.Is(err, c.wantErr) {
				t.Fatalf("want code %s, got %s: %v\n%s", c.wantCode, be.Info.Code, err, lastLines(log.String(), 30))
			}
			if be.Info.Stage != StageCustomise {
				t.Errorf("failed at stage %q, want customise", be.Info.Stage)
			}
			if be.Info.Hint == "" {
				t.Error("no hint for the user")
			}
			if entries, _ := os.ReadDir(out); len(entries) != 0 {
				t.Errorf("a failed build left files in the output directory: %v", entries)
			}
			if c.check != nil {
				c.check(t, log.String())
			}
			assertNoSandboxLeft(t, workDir)
		})
	}
}

func TestBuildTimeoutStopsEverything(t *testing.T) {
	requireBuilder(t)
	out, workDir := t.TempDir(), t.TempDir()
	var ev eventLog
	_, err := Build(context.Background(), Options{
		Recipe: loadRecipe(t, "../../examples/minimal.yaml"), OutDir: out, CacheDir: testCache(t), WorkDir: workDir,
		Timeout: 25 * time.Second, WarnAfter: 10 * time.Second, Events: ev.add,
	})
	var be *Error
	if !errors.As(err, &be) || be.Info.Code != "timeout" || !errors.Is(err, ErrTimeout) {
		t.Fatalf("want a timeout error, got %v", err)
	}
	if !strings.Contains(be.Info.Message, "stage") {
		t.Errorf("timeout message does not name the stage: %s", be.Info.Message)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Errorf("a timed-out build left files: %v", entries)
	}
	if !strings.Contains(ev.text(), "warning") {
		t.Error("no warning event before the timeout")
	}
	assertNoSandboxLeft(t, workDir)
}

func TestUnknownPackageIsClearBeforeDownload(t *testing.T) {
	requireBuilder(t)
	r := hostileRecipe(t, "unknown-package")
	r.Packages = []string{"nano", "nanoo", "definitely-not-a-debian-package"}
	var ev eventLog
	_, err := Build(context.Background(), Options{Recipe: r, OutDir: t.TempDir(), CacheDir: testCache(t), Events: ev.add})
	var be *Error
	if !errors.As(err, &be) || be.Info.Code != "unknown_package" || !errors.Is(err, ErrUnknownPackage) {
		t.Fatalf("want unknown_package, got %v", err)
	}
	if be.Info.Stage != StageResolve {
		t.Errorf("stage %s, want resolve", be.Info.Stage)
	}
	for _, want := range []string{`"nanoo" (did you mean "nano"?)`, `"definitely-not-a-debian-package"`} {
		if !strings.Contains(be.Info.Message, want) {
			t.Errorf("message lacks %s: %s", want, be.Info.Message)
		}
	}
	if strings.Contains(ev.text(), "stage-start download") {
		t.Error("the download started despite unknown packages")
	}
}

// assertNoSandboxLeft checks that no process of a build survived it: none whose command
// line, or whose ancestor's, names the build's own work directory (bubblewrap's does), so
// that builds of other programs running on the machine at the same time do not count.
func assertNoSandboxLeft(t *testing.T, workDir string) {
	t.Helper()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid := e.Name()
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		for p, depth := pid, 0; p != "" && p != "0" && depth < 30; depth++ {
			cmdline, err := os.ReadFile(filepath.Join("/proc", p, "cmdline"))
			if err != nil {
				break
			}
			if strings.Contains(string(cmdline), workDir) {
				self, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
				t.Errorf("process %s survived the build: %s", pid, strings.ReplaceAll(string(self), "\x00", " "))
				break
			}
			p = parentPID(p)
		}
	}
}

func parentPID(pid string) string {
	status, err := os.ReadFile(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func lastLines(s string, n int) string {
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
