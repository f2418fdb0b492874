package builder

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"debate/internal/recipe"
	"debate/internal/sandbox"
)

// pipeline holds the state of one build while its stages run.
type pipeline struct {
	o          Options
	rep        *reporter
	ws         *sandbox.Workspace
	debs       string // host path of the package cache's .deb directory
	recipe     *recipe.Recipe
	recipeHash string
	ctx        context.Context
	deadline   time.Time
	peakMemory int64

	// Filled by the stages.
	pinned       Pinned
	sde          int64
	lock         []LockedPackage
	installed    []InstalledPackage
	buildKey     string
	manifestData []byte
	downloaded   int64
}

// run executes the stages in order.
func (p *pipeline) run() (*Result, error) {
	p.recipe = p.recipe.Clone()
	p.recipe.Normalize()
	steps := []struct {
		stage string
		msg   string
		fn    func() error
	}{
		{StageResolve, "pinning the package archive and checking every package exists", p.resolve},
		{StageDownload, "fetching the packages (from the cache when it has them)", p.download},
		{StageBootstrap, "installing the base system and packages, offline, in the sandbox", p.bootstrap},
		{StageSquashfs, "compressing the root filesystem", p.squashfs},
		{StageBootloader, "preparing BIOS and UEFI boot loaders", p.bootloader},
		{StageISO, "writing the hybrid ISO image", p.iso},
		{StageManifest, "recording the manifest and checksums", p.manifest},
	}
	for _, s := range steps {
		if err := p.ctx.Err(); err != nil {
			return nil, p.ctxErr(err)
		}
		// bootstrap hands over to customise itself, when mmdebstrap reaches the hook.
		p.rep.stageStart(s.stage, s.msg)
		if err := s.fn(); err != nil {
			return nil, err
		}
		p.rep.stageEnd("")
		if s.stage == StageResolve && p.o.OnPinned != nil {
			p.o.OnPinned(p.pinned)
		}
		if s.stage == StageResolve && p.o.AfterResolve != nil {
			if err := p.o.AfterResolve(p.buildKey); err != nil {
				return nil, err
			}
		}
	}
	return p.publish()
}

func (p *pipeline) ctxErr(err error) error {
	if err == context.DeadlineExceeded {
		return fmt.Errorf("%w after %s", ErrTimeout, p.o.Timeout)
	}
	return fmt.Errorf("%w: %w", ErrCanceled, err)
}

// path returns the host path of a file inside the workspace.
func (p *pipeline) path(rel ...string) string {
	return filepath.Join(append([]string{p.ws.Dir}, rel...)...)
}

// step describes one sandboxed command.
type step struct {
	name    string
	args    []string
	network bool
	env     []string
	mounts  []sandbox.Mount
	// onLine sees every output line (after it went to the log).
	onLine func(string)
}

// exec runs a step in the sandbox with the build's limits and remaining time, the
// workspace at /build and the package cache at /cache (read-only unless the step has
// network, which only the download steps do).
func (p *pipeline) exec(s step) error {
	remaining := time.Until(p.deadline)
	if remaining <= 0 {
		return fmt.Errorf("%w after %s", ErrTimeout, p.o.Timeout)
	}
	tail := newTail(40)
	lw := &lineWriter{fn: func(line string) {
		tail.add(line)
		if p.o.Log != nil {
			fmt.Fprintf(p.o.Log, "[%7.1fs] %s\n", time.Since(p.rep.start).Seconds(), line)
		}
		p.rep.log(line)
		if s.onLine != nil {
			s.onLine(line)
		}
	}}
	env := append([]string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"LC_ALL=C.UTF-8", "TZ=UTC", "HOME=/tmp", "DEBIAN_FRONTEND=noninteractive",
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", p.sde),
	}, s.env...)
	mounts := append([]sandbox.Mount{
		{Source: p.ws.Dir, Target: "/build", Writable: true},
		{Source: p.debs, Target: "/cache", Writable: s.network},
	}, s.mounts...)
	st, err := sandbox.Run(p.ctx, sandbox.Spec{
		Name:      s.name,
		Args:      s.args,
		Env:       env,
		Dir:       "/build",
		HostTools: true,
		Mounts:    mounts,
		Network:   s.network,
		Limits:    p.o.Limits,
		Timeout:   remaining,
		Stdout:    lw,
		Stderr:    lw,
	})
	lw.Flush()
	if st.PeakMemoryBytes > p.peakMemory {
		p.peakMemory = st.PeakMemoryBytes
	}
	if err != nil {
		if p.ws.Full() {
			err = &wrapped{fmt.Errorf("%s filled the build's disk space limit of %s (%w)", s.name, sandbox.FormatBytes(p.ws.Size()), err), ErrDiskFull}
		}
		return failure(p.rep.current(), err, tail.lines())
	}
	return nil
}

// lineWriter splits a byte stream into lines; progress bars that redraw with \r count
// as lines too.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexAny(w.buf, "\n\r")
		if i < 0 {
			break
		}
		line := strings.TrimRight(string(w.buf[:i]), " ")
		w.buf = w.buf[i+1:]
		if line != "" {
			w.fn(line)
		}
	}
	if len(w.buf) > 64<<10 { // a pathological line without end: pass it on in pieces
		w.fn(string(w.buf))
		w.buf = w.buf[:0]
	}
	return len(b), nil
}

// Flush passes on a last line without newline.
func (w *lineWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.fn(string(w.buf))
		w.buf = nil
	}
}

// tail keeps the last n lines.
type tail struct {
	mu sync.Mutex
	n  int
	l  []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.l = append(t.l, s)
	if len(t.l) > t.n {
		t.l = t.l[len(t.l)-t.n:]
	}
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.l...)
}

// writeFile writes a file into the workspace.
func (p *pipeline) writeFile(rel string, data []byte, mode os.FileMode) error {
	full := p.path(rel)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	return os.WriteFile(full, data, mode)
}

// readLines reads a workspace file written by a sandboxed step. It refuses symlinks: the
// workspace holds content a recipe controls, and following a link there on the host could
// read a host file.
func (p *pipeline) readLines(rel string) ([]string, error) {
	f, err := openNoFollow(p.path(rel))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<16), 16<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, sc.Err()
}

func openNoFollow(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return os.Open(path)
}

var _ io.Writer = (*lineWriter)(nil)
