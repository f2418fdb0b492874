package config

import (
	"errors"
	"flag"
	"net/url"
	"path/filepath"
	"runtime"
	"time"
)

// Build is how a worker process builds: the settings `debate worker` and
// `debate serve --workers N` share.
type Build struct {
	// ArtifactDir is the content-addressed artifact store. Workers and servers must all
	// see the same store (one machine, or a shared file system).
	ArtifactDir string
	CacheDir    string // package cache kept between builds
	WorkDir     string // build workspaces
	// Mirror and SecurityMirror are used by recipes that name none ("" = the machine's
	// apt sources).
	Mirror, SecurityMirror string

	Timeout       time.Duration
	WarnAfter     time.Duration
	ScriptTimeout time.Duration
	Memory        int64
	Pids          int
	CPUs          float64
	Disk          int64

	// HeartbeatInterval and StaleAfter: a worker whose heartbeat is older than StaleAfter
	// is taken for dead and its builds are handed to other workers.
	HeartbeatInterval time.Duration
	StaleAfter        time.Duration
	// LogRetention is how long build logs are kept after the build ended.
	LogRetention time.Duration
	// PinMaxAge is how old pinned inputs may be for an instant cache hit.
	PinMaxAge time.Duration
}

// Worker is the validated configuration of `debate worker`.
type Worker struct {
	Concurrency     int
	ShutdownTimeout time.Duration
	Build           Build
	Database        Database
	Log             Log
}

type buildRaw struct {
	artifactDir, cacheDir, workDir    string
	mirror, securityMirror            string
	timeout, warnAfter, scriptTimeout time.Duration
	memory, disk                      string
	pids                              int
	cpus                              float64
	heartbeat, staleAfter             time.Duration
	logRetention, pinMaxAge           time.Duration
}

// buildFlags declares the build settings; defaults follow systemd's StateDirectory= and
// CacheDirectory= when those are set.
func buildFlags(fs *flag.FlagSet, r *buildRaw, env Env) {
	cacheDefault := "/var/cache/debate/packages"
	if d, ok := env("CACHE_DIRECTORY"); ok && d != "" {
		cacheDefault = filepath.Join(d, "packages")
	}
	fs.StringVar(&r.artifactDir, "artifact-dir", "", "content-addressed artifact store, shared by the server and every worker (default: artifacts/ in the server's --state-dir, else in $STATE_DIRECTORY, else /var/lib/debate/artifacts)")
	fs.StringVar(&r.cacheDir, "cache-dir", cacheDefault, "package cache kept between builds")
	fs.StringVar(&r.workDir, "work-dir", "/var/tmp/debate", "directory for build workspaces")
	fs.StringVar(&r.mirror, "mirror", "", "Debian mirror URL for recipes that name none (default: this machine's apt source)")
	fs.StringVar(&r.securityMirror, "security-mirror", "", "Debian security mirror URL for recipes that name none")
	fs.DurationVar(&r.timeout, "build-timeout", 20*time.Minute, "hard time limit of one build")
	fs.DurationVar(&r.warnAfter, "build-warn-after", 15*time.Minute, "a build that has run this long gets a warning event")
	fs.DurationVar(&r.scriptTimeout, "script-timeout", 0, "time limit of each recipe script (0: only the build's)")
	fs.StringVar(&r.memory, "build-memory", "6GiB", "memory limit of a build's sandbox")
	fs.IntVar(&r.pids, "build-pids", 4096, "process limit of a build's sandbox")
	fs.Float64Var(&r.cpus, "build-cpus", 0, "CPU limit of a build's sandbox (0: all)")
	fs.StringVar(&r.disk, "build-disk", "16GiB", "size limit of a build's workspace")
	fs.DurationVar(&r.heartbeat, "heartbeat-interval", 5*time.Second, "how often a worker records that it is alive")
	fs.DurationVar(&r.staleAfter, "stale-after", 30*time.Second, "a worker silent this long is taken for dead; its builds restart elsewhere")
	fs.DurationVar(&r.logRetention, "log-retention", 30*24*time.Hour, "how long build logs are kept after the build ended")
	fs.DurationVar(&r.pinMaxAge, "pin-max-age", 15*time.Minute, "how old the pinned archive state may be for a cache hit answered at submission")
}

// validate checks the build settings; stateDir is the process's --state-dir ("" for
// none), under which the artifact store goes by default.
func (r *buildRaw) validate(stateDir string, env Env) (*Build, []error) {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, settingError(flagName, format, args...))
	}
	b := &Build{
		ArtifactDir: r.artifactDir, CacheDir: r.cacheDir, WorkDir: r.workDir,
		Mirror: r.mirror, SecurityMirror: r.securityMirror,
		Timeout: r.timeout, WarnAfter: r.warnAfter, ScriptTimeout: r.scriptTimeout,
		Pids: r.pids, CPUs: r.cpus, HeartbeatInterval: r.heartbeat, StaleAfter: r.staleAfter,
		LogRetention: r.logRetention, PinMaxAge: r.pinMaxAge,
	}
	if b.ArtifactDir == "" {
		if stateDir == "" {
			stateDir, _ = env("STATE_DIRECTORY") // systemd's StateDirectory=
		}
		if stateDir == "" {
			stateDir = "/var/lib/debate"
		}
		b.ArtifactDir = filepath.Join(stateDir, "artifacts")
	}
	for _, d := range []struct {
		name string
		v    *string
	}{{"artifact-dir", &b.ArtifactDir}, {"cache-dir", &b.CacheDir}, {"work-dir", &b.WorkDir}} {
		if *d.v == "" {
			bad(d.name, "required: a directory")
			continue
		}
		abs, err := filepath.Abs(*d.v)
		if err != nil {
			bad(d.name, "%v", err)
			continue
		}
		*d.v = abs
	}
	for _, m := range []struct{ name, v string }{{"mirror", r.mirror}, {"security-mirror", r.securityMirror}} {
		if m.v != "" {
			if !validMirror(m.v) {
				bad(m.name, "want an http:// or https:// URL, got %q", m.v)
			}
		}
	}
	if r.timeout < time.Minute {
		bad("build-timeout", "want at least 1m, got %s", r.timeout)
	}
	if r.warnAfter <= 0 || r.warnAfter > r.timeout {
		bad("build-warn-after", "want a positive duration no longer than --build-timeout (%s), got %s", r.timeout, r.warnAfter)
	}
	if r.scriptTimeout < 0 {
		bad("script-timeout", "want 0 (none) or a positive duration, got %s", r.scriptTimeout)
	}
	if n, err := parseSize(r.memory); err != nil || n < 256<<20 {
		bad("build-memory", "want a size of at least 256MiB, such as 6GiB; got %q", r.memory)
	} else {
		b.Memory = n
	}
	if n, err := parseSize(r.disk); err != nil || n < 1<<30 {
		bad("build-disk", "want a size of at least 1GiB, such as 16GiB; got %q", r.disk)
	} else {
		b.Disk = n
	}
	if r.pids < 64 {
		bad("build-pids", "want at least 64, got %d", r.pids)
	}
	if r.cpus < 0 || r.cpus > float64(runtime.NumCPU()*4) {
		bad("build-cpus", "want 0 (all) up to %d, got %g", runtime.NumCPU()*4, r.cpus)
	}
	if r.heartbeat < 100*time.Millisecond {
		bad("heartbeat-interval", "want at least 100ms, got %s", r.heartbeat)
	}
	if r.staleAfter < 2*r.heartbeat {
		bad("stale-after", "want at least twice --heartbeat-interval (%s), got %s", r.heartbeat, r.staleAfter)
	}
	if r.logRetention < time.Hour {
		bad("log-retention", "want at least 1h, got %s", r.logRetention)
	}
	if r.pinMaxAge < 10*time.Second {
		bad("pin-max-age", "want at least 10s, got %s", r.pinMaxAge)
	}
	return b, errs
}

// validMirror accepts an http(s) URL with a host.
func validMirror(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.User == nil &&
		u.RawQuery == "" && u.Fragment == ""
}

// WorkerFlags declares the flags of `debate worker`; see ServeFlags.
func WorkerFlags(fs *flag.FlagSet, env Env) func() (*Worker, error) {
	var br buildRaw
	var db dbRaw
	var lg logRaw
	var concurrency int
	var shutdown time.Duration
	fs.IntVar(&concurrency, "concurrency", 1, "builds run at once by this worker")
	fs.DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "after SIGTERM, how long running builds may finish before they are cancelled and requeued")
	buildFlags(fs, &br, env)
	databaseFlags(fs, &db)
	logFlags(fs, &lg)
	return func() (*Worker, error) {
		var errs []error
		if concurrency < 1 || concurrency > 256 {
			errs = append(errs, settingError("concurrency", "want 1 to 256, got %d", concurrency))
		}
		if shutdown <= 0 {
			errs = append(errs, settingError("shutdown-timeout", "want a positive duration such as 30s, got %s", shutdown))
		}
		b, berrs := br.validate("", env)
		errs = append(errs, berrs...)
		d, err := db.validate(env)
		errs = append(errs, err)
		l, err := lg.validate()
		errs = append(errs, err)
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return &Worker{Concurrency: concurrency, ShutdownTimeout: shutdown, Build: *b, Database: *d, Log: *l}, nil
	}
}

// ParseWorker parses `debate worker` arguments and variables.
func ParseWorker(args []string, env Env) (*Worker, error) {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	done := WorkerFlags(fs, env)
	if err := parse(fs, args, env, dbAliases()); err != nil {
		return nil, err
	}
	return done()
}

// BuildService are the API's settings for build submissions.
type BuildService struct {
	// Workers is how many builds this server process runs itself (0: none; separate
	// `debate worker` processes do).
	Workers int
	// QueueLimit refuses new builds while this many are queued (0: unlimited).
	QueueLimit int
	// SubmitLimit is how many builds one client may queue per hour (0: unlimited).
	SubmitLimit int
	// MetricsListen is the address of the Prometheus /metrics listener ("" for none).
	MetricsListen string
}

type buildServiceRaw struct {
	workers, queueLimit, submitLimit int
	metricsListen                    string
	build                            buildRaw
}

func buildServiceFlags(fs *flag.FlagSet, r *buildServiceRaw, env Env) {
	fs.IntVar(&r.workers, "workers", 0, "builds this server runs itself, for one-machine set-ups (0: leave builds to `debate worker` processes)")
	fs.IntVar(&r.queueLimit, "queue-limit", 100, "refuse new builds with 503 while this many are queued (0: no limit)")
	fs.IntVar(&r.submitLimit, "build-submit-limit", 20, "builds one client may queue per hour, on top of the rate limit (0: no limit)")
	fs.StringVar(&r.metricsListen, "metrics-listen", "127.0.0.1:9090", "address of the Prometheus /metrics listener, kept off the public listener; empty for none")
	buildFlags(fs, &r.build, env)
}

func (r *buildServiceRaw) validate(stateDir string, env Env) (*BuildService, *Build, []error) {
	var errs []error
	if r.workers < 0 || r.workers > 256 {
		errs = append(errs, settingError("workers", "want 0 to 256, got %d", r.workers))
	}
	if r.queueLimit < 0 {
		errs = append(errs, settingError("queue-limit", "want 0 (no limit) or more, got %d", r.queueLimit))
	}
	if r.submitLimit < 0 {
		errs = append(errs, settingError("build-submit-limit", "want 0 (no limit) or more, got %d", r.submitLimit))
	}
	if r.metricsListen != "" {
		if err := parseAddr(r.metricsListen); err != nil {
			errs = append(errs, settingError("metrics-listen", "%v", err))
		}
	}
	b, berrs := r.build.validate(stateDir, env)
	errs = append(errs, berrs...)
	return &BuildService{Workers: r.workers, QueueLimit: r.queueLimit, SubmitLimit: r.submitLimit, MetricsListen: r.metricsListen},
		b, errs
}
