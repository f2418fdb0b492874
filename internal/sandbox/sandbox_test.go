package sandbox

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"debate/internal/testenv"
)

// requireSandbox fails under CI (where isolation must work) and skips elsewhere.
func requireSandbox(t *testing.T) {
	t.Helper()
	testenv.Need(t, "the sandbox", Available())
}

func run(t *testing.T, s Spec) (string, Stats, error) {
	t.Helper()
	var out bytes.Buffer
	s.Stdout, s.Stderr = &out, &out
	s.HostTools = true
	if s.Name == "" {
		s.Name = "test"
	}
	s.Env = append(s.Env, "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
	st, err := Run(context.Background(), s)
	return out.String(), st, err
}

func TestRunsAndReportsExitCode(t *testing.T) {
	requireSandbox(t)
	out, _, err := run(t, Spec{Args: []string{"/bin/sh", "-c", "echo hello; id -u; exit 3"}})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || !errors.Is(err, ErrFailed) {
		t.Fatalf("want exit 3, got %v", err)
	}
	if !strings.Contains(out, "hello\n0\n") {
		t.Fatalf("unexpected output %q", out)
	}
}

func TestNoNetworkUnlessGranted(t *testing.T) {
	requireSandbox(t)
	// A listener on the host's loopback: reachable from the host, not from the sandbox.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("reached\n"))
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	probe := []string{"/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/" + strconv.Itoa(port) + " && cat <&3"}
	out, _, err := run(t, Spec{Args: probe})
	if err == nil || strings.Contains(out, "reached") {
		t.Fatalf("sandbox reached the host's network: err=%v out=%q", err, out)
	}
	out, _, err = run(t, Spec{Args: probe, Network: true})
	if err != nil || !strings.Contains(out, "reached") {
		t.Fatalf("granted network did not work: err=%v out=%q", err, out)
	}
}

func TestHostFilesInvisible(t *testing.T) {
	requireSandbox(t)
	secretDir := t.TempDir()
	secret := filepath.Join(secretDir, "secret")
	if err := os.WriteFile(secret, []byte("TOP-SECRET"), 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out, _, err := run(t, Spec{
		Args:   []string{"/bin/sh", "-c", "cat " + secret + " /etc/shadow /root/.bash_history 2>&1; ls / ; echo ok > /work/written"},
		Mounts: []Mount{{Source: work, Target: "/work", Writable: true}},
	})
	if err != nil {
		t.Fatalf("run failed: %v: %s", err, out)
	}
	if !strings.Contains(out, "No such file") || strings.Contains(out, "TOP-SECRET") || strings.Contains(out, "root:") {
		t.Fatalf("host file leaked into the sandbox: %q", out)
	}
	if b, _ := os.ReadFile(filepath.Join(work, "written")); string(b) != "ok\n" {
		t.Fatalf("work dir not writable: %q", b)
	}
	// Writes outside the granted directory must not reach the host.
	_, _, _ = run(t, Spec{Args: []string{"/bin/sh", "-c", "echo x > " + filepath.Join(secretDir, "planted")}})
	if _, err := os.Stat(filepath.Join(secretDir, "planted")); err == nil {
		t.Fatal("sandbox wrote into a host directory")
	}
}

func TestForkBombContained(t *testing.T) {
	requireSandbox(t)
	start := time.Now()
	_, st, err := run(t, Spec{
		Args:    []string{"/bin/bash", "-c", "b() { b | b & }; b; sleep 5"},
		Limits:  Limits{Pids: 64},
		Timeout: 60 * time.Second,
	})
	if err == nil && st.PidsLimitHits == 0 {
		t.Fatalf("fork bomb ran unchecked")
	}
	if st.PidsLimitHits == 0 {
		t.Fatalf("pids limit never hit: %v", err)
	}
	if time.Since(start) > 50*time.Second {
		t.Fatalf("fork bomb not contained in time")
	}
}

func TestMemoryLimit(t *testing.T) {
	requireSandbox(t)
	_, st, err := run(t, Spec{
		Args:   []string{"/bin/sh", "-c", "dd if=/dev/zero of=/dev/null bs=600M count=1"},
		Limits: Limits{MemoryBytes: 128 << 20},
	})
	if !errors.Is(err, ErrMemoryLimit) {
		t.Fatalf("want ErrMemoryLimit, got %v (stats %+v)", err, st)
	}
	if !strings.Contains(err.Error(), "memory limit of 128.0 MiB") {
		t.Fatalf("error does not name the limit: %v", err)
	}
}

func TestTimeoutKillsWholeTree(t *testing.T) {
	requireSandbox(t)
	marker := t.TempDir()
	start := time.Now()
	warned := false
	_, _, err := run(t, Spec{
		// A background child that would write after the timeout if it survived.
		Args:      []string{"/bin/sh", "-c", "(sleep 4; echo alive > /m/late) & sleep 600"},
		Mounts:    []Mount{{Source: marker, Target: "/m", Writable: true}},
		Timeout:   2 * time.Second,
		WarnAfter: time.Second,
		OnWarn:    func(time.Duration) { warned = true },
	})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("want ErrTimeout, got %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("timeout took %s", d)
	}
	if !warned {
		t.Fatal("no warning before the timeout")
	}
	time.Sleep(3 * time.Second)
	if _, err := os.Stat(filepath.Join(marker, "late")); err == nil {
		t.Fatal("a process of the sandbox survived the timeout")
	}
}

func TestCancelKills(t *testing.T) {
	requireSandbox(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(time.Second, cancel)
	start := time.Now()
	_, err := Run(ctx, Spec{Name: "cancel", HostTools: true, Args: []string{"/bin/sleep", "600"}})
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("want cancel, got %v", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("cancel was slow")
	}
}

func TestWorkspaceDiskLimit(t *testing.T) {
	requireSandbox(t)
	ws, err := NewWorkspace(filepath.Join(t.TempDir(), "ws"), 96<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ws.Close(); err != nil {
			t.Error(err)
		}
	}()
	out, _, err := run(t, Spec{
		Args:   []string{"/bin/sh", "-c", "dd if=/dev/zero of=/w/fill bs=1M count=500"},
		Mounts: []Mount{{Source: ws.Dir, Target: "/w", Writable: true}},
	})
	if err == nil {
		t.Fatalf("filling beyond the limit succeeded: %s", out)
	}
	if !ws.Full() {
		t.Fatalf("workspace not reported full after: %s", out)
	}
	if !strings.Contains(out, "No space left") {
		t.Fatalf("unexpected output: %s", out)
	}
}

func TestSweepRemovesDeadWorkspacesOnly(t *testing.T) {
	requireSandbox(t)
	parent := t.TempDir()
	live, err := NewWorkspace(filepath.Join(parent, "live"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead, err := NewWorkspace(filepath.Join(parent, "dead"), 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	// A dead owner: the lock is released without the workspace being closed.
	dead.lock.Close()
	n, err := SweepWorkspaces(parent)
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	if _, err := os.Stat(dead.image); err == nil {
		t.Fatal("dead workspace image left")
	}
	if _, err := os.Stat(live.image); err != nil {
		t.Fatal("live workspace removed")
	}
	out, _ := exec.Command("findmnt", "-n", dead.Dir).Output()
	if len(out) > 0 {
		t.Fatalf("dead workspace still mounted: %s", out)
	}
}
