package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"debate/internal/builder"
	"debate/internal/catalog"
	"debate/internal/recipe"
	"debate/internal/resolve"
	"debate/internal/sandbox"
)

// buildConfig is the typed configuration of `debate build`, from flags and DEBATE_*
// variables (flags win).
type buildConfig struct {
	recipePath string
	outDir     string
	cacheDir   string
	workDir    string
	mirror     string
	security   string
	jsonEvents bool
	verify     bool
	verbose    bool
	logPath    string
	timeout    time.Duration
	warnAfter  time.Duration
	memory     string
	pids       int
	cpus       float64
	disk       string
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := buildConfig{}
	fs.StringVar(&c.outDir, "o", envOr("DEBATE_OUT_DIR", "out"), "output `directory` for the ISO, manifest and checksums")
	fs.StringVar(&c.cacheDir, "cache-dir", envOr("DEBATE_CACHE_DIR", ""), "package cache `directory` kept between builds (default: none)")
	fs.StringVar(&c.workDir, "work-dir", envOr("DEBATE_WORK_DIR", "/var/tmp/debate"), "`directory` for build workspaces")
	fs.StringVar(&c.mirror, "mirror", envOr("DEBATE_MIRROR", ""), "Debian mirror `URL` when the recipe names none (default: this machine's apt source)")
	fs.StringVar(&c.security, "security-mirror", envOr("DEBATE_SECURITY_MIRROR", ""), "Debian security mirror `URL` when the recipe names none")
	fs.BoolVar(&c.jsonEvents, "json", false, "print one JSON event per line instead of the live display")
	fs.BoolVar(&c.verify, "verify", false, "build twice in separate workspaces and fail unless the ISOs are bit-identical")
	fs.BoolVar(&c.verbose, "v", false, "show every tool's output")
	fs.StringVar(&c.logPath, "log", "", "write the full build log to `file`")
	fs.DurationVar(&c.timeout, "timeout", envDuration("DEBATE_BUILD_TIMEOUT", builder.DefaultTimeout), "hard time limit of a build")
	fs.DurationVar(&c.warnAfter, "warn-after", envDuration("DEBATE_BUILD_WARN_AFTER", builder.DefaultWarnAfter), "emit a warning when a build has run this long")
	fs.StringVar(&c.memory, "memory", envOr("DEBATE_BUILD_MEMORY", "6GiB"), "memory limit of the build's sandbox")
	fs.IntVar(&c.pids, "pids", builder.DefaultPids, "process limit of the build's sandbox")
	fs.Float64Var(&c.cpus, "cpus", 0, "CPU limit of the build's sandbox (default: all)")
	fs.StringVar(&c.disk, "disk", envOr("DEBATE_BUILD_DISK", "16GiB"), "size limit of the build's workspace")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: debate build RECIPE [-o DIR] [--cache-dir DIR] [--json] [--verify] [flags]")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	if len(rest) != 1 {
		fs.Usage()
		return 2
	}
	c.recipePath = rest[0]
	memory, err := parseSize(c.memory)
	if err != nil {
		fmt.Fprintf(stderr, "debate build: --memory: %v\n", err)
		return 2
	}
	disk, err := parseSize(c.disk)
	if err != nil {
		fmt.Fprintf(stderr, "debate build: --disk: %v\n", err)
		return 2
	}
	if c.timeout <= 0 || c.warnAfter <= 0 {
		fmt.Fprintln(stderr, "debate build: --timeout and --warn-after must be positive")
		return 2
	}

	r, err := loadRecipe(c.recipePath)
	if err != nil {
		printRecipeError(stderr, c.recipePath, err)
		return 1
	}

	var logW io.Writer
	if c.logPath != "" {
		f, err := os.Create(c.logPath)
		if err != nil {
			fmt.Fprintf(stderr, "debate build: --log: %v\n", err)
			return 2
		}
		defer f.Close()
		logW = f
	}
	var display *progressDisplay
	var events func(builder.Event)
	if c.jsonEvents {
		enc := json.NewEncoder(stdout)
		var mu sync.Mutex
		events = func(e builder.Event) {
			mu.Lock()
			defer mu.Unlock()
			_ = enc.Encode(e)
		}
	} else {
		display = newProgressDisplay(stdout, isTerminal(stdout), c.verbose)
		events = display.handle
	}
	opts := builder.Options{
		Recipe: r, OutDir: c.outDir, CacheDir: c.cacheDir, WorkDir: c.workDir,
		Mirror: c.mirror, SecurityMirror: c.security,
		Timeout: c.timeout, WarnAfter: c.warnAfter,
		Limits:    sandbox.Limits{MemoryBytes: memory, Pids: c.pids, CPUs: c.cpus},
		DiskLimit: disk, Events: events, Log: logW,
	}
	var res *builder.Result
	if c.verify {
		res, err = builder.Verify(ctx, opts)
	} else {
		res, err = builder.Build(ctx, opts)
	}
	if err != nil {
		if !c.jsonEvents {
			printBuildError(stderr, err)
		}
		return exitCode(err)
	}
	if !c.jsonEvents {
		fmt.Fprintf(stdout, "\nISO     %s\nsize    %s\nsha256  %s\nkey     %s\ntime    %s\n",
			res.ISO.Path, humanSize(res.ISO.Size), res.ISO.SHA256, res.BuildKey, (time.Duration(res.Seconds * float64(time.Second))).Round(100*time.Millisecond))
		if c.verify {
			fmt.Fprintln(stdout, "verified: two independent builds produced the identical ISO")
		}
	}
	return 0
}

// loadRecipe reads, parses and validates a recipe file ("-" for standard input).
func loadRecipe(path string) (*recipe.Recipe, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(os.Stdin, recipe.MaxRecipeBytes+1))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	r, err := recipe.Parse(data, recipe.Auto)
	if err != nil {
		return nil, err
	}
	// The builder builds the effective recipe: the layers composed in order, the recipe's
	// own fields on top.
	cat, err := catalog.Default()
	if err != nil {
		return nil, err
	}
	return resolve.Compose(r, cat)
}

func printRecipeError(w io.Writer, path string, err error) {
	var ve *recipe.ValidationError
	if errors.As(err, &ve) {
		fmt.Fprintf(w, "%s: the recipe has %d problem(s):\n", path, len(ve.Errors))
		for _, fe := range ve.Errors {
			fmt.Fprintf(w, "  %s\n", fe.String())
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", path, err)
}

func printBuildError(w io.Writer, err error) {
	var be *builder.Error
	if !errors.As(err, &be) {
		fmt.Fprintf(w, "\nbuild failed: %v\n", err)
		return
	}
	fmt.Fprintf(w, "\nbuild failed")
	if be.Info.Stage != "" {
		fmt.Fprintf(w, " at stage %s", be.Info.Stage)
	}
	fmt.Fprintf(w, " [%s]\n  %s\n", be.Info.Code, be.Info.Message)
	if be.Info.Hint != "" {
		fmt.Fprintf(w, "  what to do: %s\n", be.Info.Hint)
	}
	if len(be.Info.LogTail) > 0 {
		fmt.Fprintln(w, "  last lines of the log:")
		tail := be.Info.LogTail
		if len(tail) > 15 {
			tail = tail[len(tail)-15:]
		}
		for _, l := range tail {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
}

// progressDisplay renders events for people: one line per stage, with a live bar on a
// terminal.
type progressDisplay struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	verbose bool
	live    bool
}

func newProgressDisplay(w io.Writer, tty, verbose bool) *progressDisplay {
	return &progressDisplay{w: w, tty: tty, verbose: verbose}
}

func (d *progressDisplay) clearLive() {
	if d.live {
		fmt.Fprint(d.w, "\r\033[K")
		d.live = false
	}
}

func (d *progressDisplay) handle(e builder.Event) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch e.Type {
	case builder.EventBuildStart:
		fmt.Fprintln(d.w, e.Message)
	case builder.EventStageStart:
		d.clearLive()
		fmt.Fprintf(d.w, "▸ %-10s %s\n", e.Stage, e.Message)
	case builder.EventProgress:
		if d.tty && e.Progress != nil {
			const width = 30
			n := int(*e.Progress * width)
			msg := e.Message
			if len(msg) > 50 {
				msg = msg[:50]
			}
			fmt.Fprintf(d.w, "\r\033[K  [%s%s] %3.0f%% %s", strings.Repeat("#", n), strings.Repeat(" ", width-n), *e.Progress*100, msg)
			d.live = true
		}
	case builder.EventStageEnd:
		d.clearLive()
		fmt.Fprintf(d.w, "✓ %-10s %.1fs\n", e.Stage, e.Seconds)
	case builder.EventWarning:
		d.clearLive()
		fmt.Fprintf(d.w, "! %s\n", e.Message)
	case builder.EventLog:
		if d.verbose {
			d.clearLive()
			fmt.Fprintf(d.w, "  %s\n", e.Message)
		}
	case builder.EventBuildEnd:
		d.clearLive()
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// parseInterspersed parses flags that may come before or after positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return rest, nil
		}
		rest = append(rest, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok && v != "" {
		return v
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if v := os.Getenv(key); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// parseSize reads sizes like 512MiB, 6GiB, 2G or plain bytes.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	var n float64
	if _, err := fmt.Sscanf(s, "%g", &n); err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a size (examples: 512MiB, 6GiB)", s)
	}
	return int64(n * float64(mult)), nil
}

func humanSize(n int64) string {
	return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
}
