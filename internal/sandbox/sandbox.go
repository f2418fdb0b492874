// Package sandbox runs a command isolated from the host: its own user, mount, PID, IPC,
// UTS, cgroup and (unless granted) network namespaces; only the paths it is given are
// visible; memory, process and CPU limits through cgroups; a hard timeout; and the whole
// process tree killed on timeout or cancel.
//
// The isolation is bubblewrap inside a user namespace that this package creates itself.
// When Debate runs as root the namespace maps the first 65536 ids onto themselves, so that
// package installation can chown files to system users, while root inside the sandbox holds
// capabilities only over its own namespaces: it cannot create device nodes, mount host
// devices or reach host files that are not bound in.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Sentinel errors. Run wraps them, so callers test with errors.Is.
var (
	// ErrTimeout: the run was killed because it exceeded Spec.Timeout.
	ErrTimeout = errors.New("sandbox: time limit exceeded")
	// ErrMemoryLimit: the kernel's OOM killer acted inside the sandbox's memory limit.
	ErrMemoryLimit = errors.New("memory limit exceeded")
	// ErrPidsLimit: a fork failed because the process limit was reached.
	ErrPidsLimit = errors.New("process limit exceeded")
	// ErrCanceled: the caller cancelled the run; the process tree was killed.
	ErrCanceled = errors.New("sandbox: cancelled")
	// ErrFailed: the command ran to completion and exited non-zero (see *ExitError).
	ErrFailed = errors.New("sandbox: command failed")
	// ErrUnsupported: the machine lacks what isolation needs (bwrap, cgroups, namespaces).
	ErrUnsupported = errors.New("sandbox: isolation not available on this machine")
)

// ExitError reports a non-zero exit of the sandboxed command.
type ExitError struct {
	Code  int
	Stats Stats
}

func (e *ExitError) Error() string {
	return fmt.Sprintf("sandbox: command exited with status %d", e.Code)
}

// Unwrap lets errors.Is(err, ErrFailed) match.
func (e *ExitError) Unwrap() error { return ErrFailed }

// Mount makes a host path visible inside the sandbox.
type Mount struct {
	Source   string // host path
	Target   string // path inside the sandbox
	Writable bool
}

// Limits bound the resources of the whole process tree.
type Limits struct {
	MemoryBytes int64   // 0: no limit
	Pids        int     // 0: no limit
	CPUs        float64 // e.g. 1.5 CPUs worth of time; 0: no limit
}

// Spec describes one sandboxed run.
type Spec struct {
	// Name appears in errors and in the cgroup name; letters, digits and dashes.
	Name string
	Args []string
	// Env is the complete environment: nothing of the caller's is inherited.
	Env []string
	// Dir is the working directory inside the sandbox (default "/").
	Dir string
	// HostTools makes the host's programs available read-only (/usr and the few files
	// under /etc that they need), for running the image tool chain. Nothing else of the
	// host is visible.
	HostTools bool
	Mounts    []Mount
	// Network keeps the host's network. Off by default: the sandbox then has only a
	// loopback interface of its own.
	Network bool
	Limits  Limits
	// Timeout kills the whole tree when exceeded (0: none, the context still applies).
	Timeout time.Duration
	// WarnAfter calls OnWarn once when the run has lasted that long.
	WarnAfter time.Duration
	OnWarn    func(elapsed time.Duration)
	Stdout    io.Writer
	Stderr    io.Writer
}

// Stats tells what a run used.
type Stats struct {
	Duration        time.Duration
	PeakMemoryBytes int64
	OOMKills        int64
	PidsLimitHits   int64
}

// Available reports whether sandboxed runs can work on this machine, and why not.
func Available() error {
	if _, err := exec.LookPath("bwrap"); err != nil {
		return fmt.Errorf("bubblewrap (bwrap) is not installed: %w", ErrUnsupported)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("builds need root (the sandbox maps a full range of user ids and sets cgroup limits): %w", ErrUnsupported)
	}
	if _, err := selfCgroups(); err != nil {
		return fmt.Errorf("%v: %w", err, ErrUnsupported)
	}
	return nil
}

// hostToolFiles are the parts of the host's /etc that programs need to run; secrets such
// as /etc/shadow stay invisible.
var hostToolFiles = []string{
	"/etc/alternatives", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
	"/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/mke2fs.conf",
	"/etc/ssl/certs", "/etc/ca-certificates.conf", "/etc/debian_version", "/etc/os-release",
	"/etc/dpkg", "/etc/perl", "/etc/xattr.conf",
}

// networkFiles are added when the network is granted, for name resolution.
var networkFiles = []string{"/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/gai.conf"}

func (s *Spec) validate() error {
	if len(s.Args) == 0 {
		return errors.New("sandbox: no command given")
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Source) || !filepath.IsAbs(m.Target) {
			return fmt.Errorf("sandbox: mount %q → %q: paths must be absolute", m.Source, m.Target)
		}
		if filepath.Clean(m.Target) == "/" {
			return fmt.Errorf("sandbox: mount onto / is not allowed")
		}
	}
	return nil
}

// bwrapArgs turns the spec into bubblewrap's command line.
func (s *Spec) bwrapArgs() []string {
	a := []string{
		"--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup",
		"--die-with-parent", "--new-session", "--clearenv",
		"--hostname", "debate-sandbox",
		// Root inside the user namespace keeps its capabilities there: package
		// installation needs chown, chroot and mounting /proc inside the image.
		"--cap-add", "ALL",
		"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
	}
	if !s.Network {
		a = append(a, "--unshare-net")
	}
	if s.HostTools {
		a = append(a, "--ro-bind", "/usr", "/usr")
		for _, l := range []string{"bin", "sbin", "lib", "lib64", "lib32", "libx32"} {
			if t, err := os.Readlink("/" + l); err == nil {
				a = append(a, "--symlink", t, "/"+l)
			} else if fi, err := os.Stat("/" + l); err == nil && fi.IsDir() {
				a = append(a, "--ro-bind", "/"+l, "/"+l)
			}
		}
		files := hostToolFiles
		if s.Network {
			files = append(append([]string{}, files...), networkFiles...)
		}
		for _, f := range files {
			a = append(a, "--ro-bind-try", f, f)
		}
	}
	for _, m := range s.Mounts {
		flag := "--ro-bind"
		if m.Writable {
			flag = "--bind"
		}
		a = append(a, flag, m.Source, m.Target)
	}
	for _, e := range s.Env {
		k, v, _ := strings.Cut(e, "=")
		a = append(a, "--setenv", k, v)
	}
	dir := s.Dir
	if dir == "" {
		dir = "/"
	}
	a = append(a, "--chdir", dir, "--")
	return append(a, s.Args...)
}

// Run executes the spec and waits for it. On success it returns the run's statistics;
// otherwise an error wrapping one of the sentinel errors above.
func Run(ctx context.Context, s Spec) (Stats, error) {
	if err := s.validate(); err != nil {
		return Stats{}, err
	}
	if err := Available(); err != nil {
		return Stats{}, err
	}
	bwrap, _ := exec.LookPath("bwrap")
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	cg, err := newCgroup("debate-"+safeName(s.Name)+"-"+hex.EncodeToString(id), s.Limits)
	if err != nil {
		return Stats{}, err
	}
	defer cg.remove()

	// The child waits on fd 3 until it has been placed in its cgroups, so that nothing it
	// forks can escape the limits.
	gateR, gateW, err := os.Pipe()
	if err != nil {
		return Stats{}, fmt.Errorf("sandbox: %w", err)
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", `read _ <&3; exec 3<&-; exec "$@"`, "sh", bwrap}, s.bwrapArgs()...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdin = nil
	cmd.Stdout = orDiscard(s.Stdout)
	cmd.Stderr = orDiscard(s.Stderr)
	cmd.ExtraFiles = []*os.File{gateR}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:     true,
		Pdeathsig:   syscall.SIGKILL,
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		gateR.Close()
		gateW.Close()
		return Stats{}, fmt.Errorf("sandbox: start %s: %w", s.Name, err)
	}
	gateR.Close()
	if err := cg.enter(cmd.Process.Pid); err != nil {
		gateW.Close()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return Stats{}, err
	}
	_, _ = gateW.Write([]byte("go\n"))
	gateW.Close()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var timeout, warn <-chan time.Time
	if s.Timeout > 0 {
		t := time.NewTimer(s.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	if s.WarnAfter > 0 && s.OnWarn != nil {
		t := time.NewTimer(s.WarnAfter)
		defer t.Stop()
		warn = t.C
	}
	// A hit limit means some process of the run was killed or could not start, so the
	// run has failed whatever it does next: stop it at once. A fork bomb would otherwise
	// keep the process table full until the timeout.
	watch := time.NewTicker(250 * time.Millisecond)
	defer watch.Stop()
	var killedFor error
	var waitErr error
	limitHit := false
loop:
	for {
		select {
		case waitErr = <-done:
			break loop
		case <-watch.C:
			if st := cg.stats(); !limitHit && (st.PidsLimitHits > 0 || st.OOMKills > 0) {
				limitHit = true
				cg.killAll()
			}
		case <-warn:
			s.OnWarn(time.Since(start))
		case <-timeout:
			killedFor = fmt.Errorf("%s ran longer than %s: %w", s.Name, s.Timeout, ErrTimeout)
			cg.killAll()
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// The caller's deadline is a time limit too.
				killedFor = fmt.Errorf("%s ran past its deadline: %w", s.Name, ErrTimeout)
			} else {
				killedFor = fmt.Errorf("%s: %w (%w)", s.Name, ErrCanceled, ctx.Err())
			}
			cg.killAll()
		}
		if killedFor != nil {
			waitErr = <-done
			break
		}
	}
	// Whatever the outcome, nothing may outlive the run (daemons the command left behind
	// included).
	cg.killAll()
	st := cg.stats()
	st.Duration = time.Since(start)
	code := 0
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		code = ee.ExitCode()
	} else if waitErr != nil && killedFor == nil {
		return st, fmt.Errorf("sandbox: %s: %w", s.Name, waitErr)
	}
	exit := &ExitError{Code: code, Stats: st}
	// A limit that was hit is the cause worth reporting, even when the command went on to
	// exit 0 or ran into the timeout afterwards: some process of it was killed or could
	// not start, so its result cannot be trusted.
	var cause error = exit
	if killedFor != nil {
		cause = killedFor
	}
	switch {
	case st.OOMKills > 0:
		return st, &limitError{fmt.Sprintf("a process of %s needed more than the memory limit of %s and was killed", s.Name, FormatBytes(s.Limits.MemoryBytes)), []error{ErrMemoryLimit, cause}}
	case st.PidsLimitHits > 0:
		return st, &limitError{fmt.Sprintf("%s tried to run more than %d processes at once", s.Name, s.Limits.Pids), []error{ErrPidsLimit, cause}}
	case killedFor != nil:
		return st, killedFor
	case waitErr == nil:
		return st, nil
	}
	return st, fmt.Errorf("%s: %w", s.Name, exit)
}

// limitError reads as what happened, in words, and matches both the limit's sentinel and
// the run's own outcome (exit status or timeout).
type limitError struct {
	msg  string
	errs []error
}

func (e *limitError) Error() string   { return e.msg }
func (e *limitError) Unwrap() []error { return e.errs }

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
		if b.Len() >= 32 {
			break
		}
	}
	if b.Len() == 0 {
		return "run"
	}
	return b.String()
}

// FormatBytes writes a byte count for people: 1.5 GiB.
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
