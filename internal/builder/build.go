package builder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"debate/internal/recipe"
	"debate/internal/sandbox"
)

// Options configure one build. Zero values take the documented defaults.
type Options struct {
	// Recipe is the effective recipe: validated, normalised, layers composed.
	Recipe *recipe.Recipe
	// OutDir receives <name>.iso, <name>.manifest.json and <name>.SHA256SUMS, each moved
	// into place only once the whole build succeeded.
	OutDir string
	// CacheDir keeps downloaded packages between builds (empty: a throw-away cache).
	CacheDir string
	// WorkDir is where build workspaces are created (default /var/tmp/debate).
	WorkDir string
	// Mirror and SecurityMirror are used when the recipe names none (default: the
	// machine's own apt sources, else deb.debian.org).
	Mirror, SecurityMirror string
	// Timeout bounds the whole build (default 20 min); WarnAfter emits a warning event
	// (default 15 min).
	Timeout, WarnAfter time.Duration
	// Limits bound every sandboxed step (defaults: 6 GiB memory, 4096 processes, all CPUs).
	Limits sandbox.Limits
	// ScriptTimeout bounds each recipe script (0: only the build's Timeout applies).
	ScriptTimeout time.Duration
	// DiskLimit bounds the build's workspace (default 16 GiB).
	DiskLimit int64
	// AfterResolve, when set, is called once the inputs are pinned, with the build key:
	// a service uses it to find an identical finished build. Returning ErrStop ends the
	// build there, successfully, with a Result that holds only the keys; any other error
	// fails the build.
	AfterResolve func(buildKey string) error
	// OnPinned, when set, receives the pinned inputs as soon as resolve has pinned them,
	// just before AfterResolve: a build service records them so that it can compute the
	// build key of the next identical request (BuildKey) without resolving again.
	OnPinned func(Pinned)
	// Events receives the progress stream (may be nil).
	Events func(Event)
	// Log receives the full output of every tool (may be nil).
	Log io.Writer
}

// Defaults.
const (
	DefaultTimeout   = 20 * time.Minute
	DefaultWarnAfter = 15 * time.Minute
	DefaultDiskLimit = 16 << 30
	DefaultMemory    = 6 << 30
	DefaultPids      = 4096
)

// Artifact is one file a build produced.
type Artifact struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Result describes a successful build.
type Result struct {
	Name       string     `json:"name"`
	RecipeHash string     `json:"recipeHash"`
	BuildKey   string     `json:"buildKey"`
	ISO        Artifact   `json:"iso"`
	Artifacts  []Artifact `json:"artifacts"`
	Seconds    float64    `json:"seconds"`
	// PeakMemoryBytes is the largest memory use of any sandboxed step.
	PeakMemoryBytes int64 `json:"peakMemoryBytes"`
	// DownloadedBytes is what the package download fetched (0 when the cache had it all).
	DownloadedBytes int64 `json:"downloadedBytes"`
}

func (o *Options) defaults() error {
	if o.Recipe == nil {
		return fmt.Errorf("%w: no recipe", ErrInvalidOptions)
	}
	if o.OutDir == "" {
		return fmt.Errorf("%w: no output directory", ErrInvalidOptions)
	}
	if o.WorkDir == "" {
		o.WorkDir = "/var/tmp/debate"
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.WarnAfter == 0 {
		o.WarnAfter = DefaultWarnAfter
	}
	if o.DiskLimit == 0 {
		o.DiskLimit = DefaultDiskLimit
	}
	if o.Limits.MemoryBytes == 0 {
		o.Limits.MemoryBytes = DefaultMemory
	}
	if o.Limits.Pids == 0 {
		o.Limits.Pids = DefaultPids
	}
	if o.Limits.CPUs == 0 {
		o.Limits.CPUs = float64(runtime.NumCPU())
	}
	if o.Mirror == "" || o.SecurityMirror == "" {
		m, s := HostMirrors()
		if o.Mirror == "" {
			o.Mirror = m
		}
		if o.SecurityMirror == "" {
			o.SecurityMirror = s
		}
	}
	for _, d := range []*string{&o.OutDir, &o.WorkDir, &o.CacheDir} {
		if *d == "" {
			continue
		}
		abs, err := filepath.Abs(*d)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidOptions, err)
		}
		*d = abs
	}
	return nil
}

// Build runs the whole pipeline. On failure the error is a *Error (or wraps one) whose
// ErrorInfo says what went wrong and what to do; nothing is left in OutDir that looks
// finished.
func Build(ctx context.Context, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, failure("", err, nil)
	}
	rep := newReporter(o.Events)
	res, err := build(ctx, o, rep)
	if errors.Is(err, ErrStop) && res != nil {
		rep.emit(Event{Type: EventBuildEnd, Seconds: time.Since(rep.start).Seconds(), Message: "stopped after resolve: " + err.Error()})
		return res, ErrStop
	}
	if err != nil {
		be := failure(rep.current(), err, nil)
		rep.emit(Event{Type: EventBuildEnd, Error: &be.Info, Seconds: time.Since(rep.start).Seconds(), Message: "build failed"})
		return nil, be
	}
	rep.emit(Event{Type: EventBuildEnd, Result: res, Seconds: res.Seconds, Message: "build succeeded"})
	return res, nil
}

func build(ctx context.Context, o Options, rep *reporter) (*Result, error) {
	r := o.Recipe
	rep.emit(Event{Type: EventBuildStart, Message: fmt.Sprintf("delivering %s (%s %s %s)", r.Name, r.Base.Distribution, r.Base.Release, r.Base.Architecture)})
	if err := sandbox.Available(); err != nil {
		return nil, failure(StageResolve, err, nil)
	}
	if err := checkTools(); err != nil {
		return nil, failure(StageResolve, err, nil)
	}
	if err := recipe.Validate(r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidOptions, err)
	}
	recipeHash := r.Hash()

	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	warn := time.AfterFunc(o.WarnAfter, func() {
		rep.warn(fmt.Sprintf("the build has run for %s; it will be stopped at %s", o.WarnAfter.Round(time.Second), o.Timeout.Round(time.Second)))
	})
	defer warn.Stop()

	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	// Workspaces of builds whose process died (a killed worker) are removed here.
	_, _ = sandbox.SweepWorkspaces(o.WorkDir)
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("create output directory: %w", err)
	}
	cacheDir := o.CacheDir
	if cacheDir == "" {
		tmp, err := os.MkdirTemp(o.WorkDir, "cache-")
		if err != nil {
			return nil, fmt.Errorf("create package cache: %w", err)
		}
		defer os.RemoveAll(tmp)
		cacheDir = tmp
	}
	debs := filepath.Join(cacheDir, "debs")
	if err := os.MkdirAll(filepath.Join(debs, "partial"), 0o755); err != nil {
		return nil, fmt.Errorf("create package cache: %w", err)
	}

	id := make([]byte, 8)
	_, _ = rand.Read(id)
	ws, err := sandbox.NewWorkspace(filepath.Join(o.WorkDir, "build-"+hex.EncodeToString(id)), o.DiskLimit)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrToolMissing, err)
	}
	defer ws.Close()

	p := &pipeline{
		o: o, rep: rep, ws: ws, debs: debs, recipe: r, recipeHash: recipeHash,
		deadline: deadline, ctx: ctx,
	}
	art, err := p.run()
	if errors.Is(err, ErrStop) {
		return &Result{Name: r.Name, RecipeHash: recipeHash, BuildKey: p.buildKey}, err
	}
	if err != nil {
		if ws.Full() && !errors.Is(err, ErrDiskFull) {
			err = &wrapped{fmt.Errorf("the build filled its disk space limit of %s (%w)", sandbox.FormatBytes(ws.Size()), err), ErrDiskFull}
		}
		if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrTimeout) {
			err = fmt.Errorf("%w after %s: %w", ErrTimeout, o.Timeout, err)
		}
		return nil, err
	}
	art.Seconds = time.Since(rep.start).Seconds()
	art.PeakMemoryBytes = p.peakMemory
	return art, nil
}

// HostMirrors returns the Debian archive and security mirrors of the machine's own apt
// sources, falling back to deb.debian.org.
func HostMirrors() (mirror, security string) {
	mirror, security = "http://deb.debian.org/debian", "http://deb.debian.org/debian-security"
	var lines []string
	for _, f := range append([]string{"/etc/apt/sources.list"}, globAll("/etc/apt/sources.list.d/*.sources", "/etc/apt/sources.list.d/*.list")...) {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines = append(lines, strings.Split(string(data), "\n")...)
	}
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "#") {
			continue
		}
		for _, f := range strings.Fields(l) {
			if !strings.HasPrefix(f, "http://") && !strings.HasPrefix(f, "https://") {
				continue
			}
			u := strings.TrimSuffix(f, "/")
			switch {
			case strings.HasSuffix(u, "/debian-security"):
				security = u
			case strings.HasSuffix(u, "/debian"):
				mirror = u
			}
		}
	}
	return mirror, security
}

func globAll(patterns ...string) []string {
	var out []string
	for _, p := range patterns {
		m, _ := filepath.Glob(p)
		out = append(out, m...)
	}
	return out
}
