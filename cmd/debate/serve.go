package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"debate/internal/artifact"
	"debate/internal/backup"
	"debate/internal/builder"
	"debate/internal/catalog"
	"debate/internal/config"
	"debate/internal/httpapi"
	"debate/internal/jobs"
	"debate/internal/resolve"
	"debate/internal/store"
)

func runServe(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	validate := config.ServeFlags(fs, config.LookupEnv)
	if code, ok := parseCommandFlags(fs, "serve", "Run the API server (HTTPS, rate limits, health checks) on PostgreSQL.", args, stderr); !ok {
		return code
	}
	cfg, err := validate()
	if err != nil {
		printConfigError(stderr, "serve", err)
		return 2
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		// The server's live heap is a few megabytes while each request leaves garbage
		// behind: collecting at 4× the live heap instead of 2× costs tens of megabytes
		// and was measured to give about a fifth more throughput. GOGC overrides it.
		debug.SetGCPercent(400)
	}
	if path := os.Getenv("DEBATE_CPU_PROFILE"); path != "" {
		// For performance work (docs/benchmarks.md): a CPU profile of the whole run.
		if stopProfile, err := startCPUProfile(path); err != nil {
			fmt.Fprintf(stderr, "debate serve: DEBATE_CPU_PROFILE: %v\n", err)
			return 2
		} else {
			defer stopProfile()
		}
	}
	logs := newLogBuffer(stderr, 100*time.Millisecond)
	defer logs.Close()
	logger := newLogger(logs, cfg.Log)
	logger = slog.New(flushOnWarn{logger.Handler(), logs.Flush})

	st, err := store.Open(ctx, cfg.Database.URL, store.Options{MaxConns: cfg.Database.MaxConns, Logger: logger})
	if err != nil {
		printConfigError(stderr, "serve", &config.Error{Flag: "--database-url", Env: "DATABASE_URL", Reason: err.Error()})
		return 2
	}
	// Closed after the server has drained: in-flight requests may still use it.
	defer st.Close()

	if cfg.MigrateOnStart {
		res, err := st.Migrate(ctx)
		if err != nil {
			logger.Error("migrations failed; not serving", slog.String("error", err.Error()))
			return 1
		}
		logMigrations(logger, res)
	} else {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if _, err := st.Ping(pctx); err != nil {
			// Serve anyway: readiness reports 503 until the database answers, which is
			// what an orchestrator starting both at once needs.
			logger.Warn("database not reachable at start-up; readiness reports 503 until it is", slog.String("error", err.Error()))
		}
		cancel()
	}

	deps := httpapi.Deps{DB: st, Logger: logger, Version: builder.Version}
	// Objections: the catalog is embedded; the package index is fetched on first use,
	// verified, kept in the state folder and refreshed when it ages.
	cat, err := catalog.Default()
	if err != nil {
		fmt.Fprintf(stderr, "debate serve: layer catalog: %v\n", err)
		return 1
	}
	deps.Judge = &resolve.Judge{
		Catalog: cat, CacheDir: filepath.Join(cfg.StateDir, "index"),
		Mirror: cfg.Build.Mirror, SecurityMirror: cfg.Build.SecurityMirror,
		Warn: func(w string) { logger.Warn("package index", "detail", w) },
	}
	var backups *backup.Service
	if cfg.Backup.Enabled() {
		backups = backup.New(st, cfg.Backup, logger)
		deps.Backups = backups
	}

	// The build service: submissions and downloads here; builds in this process with
	// --workers N, else in `debate worker` processes sharing the database and artifacts.
	arts, err := artifact.Open(cfg.Build.ArtifactDir)
	if err != nil {
		printConfigError(stderr, "serve", &config.Error{Flag: "--artifact-dir", Env: config.EnvName("artifact-dir"), Reason: err.Error()})
		return 2
	}
	if cfg.Builds.Workers > 0 {
		if err := canBuild(); err != nil {
			printConfigError(stderr, "serve", &config.Error{Flag: "--workers", Env: config.EnvName("workers"), Reason: err.Error()})
			return 2
		}
	}
	builds, err := jobs.NewService(st, arts, jobs.ServiceOptions{
		PinMaxAge: cfg.Build.PinMaxAge, QueueLimit: cfg.Builds.QueueLimit, SubmitLimit: cfg.Builds.SubmitLimit,
		StaleAfter: cfg.Build.StaleAfter, Logger: logger,
	})
	if err != nil {
		logger.Error("build service", slog.String("error", err.Error()))
		return 1
	}
	deps.Builds = builds
	// Every server also runs a River client: retention and extensions (backups) always,
	// builds with --workers N.
	worker, err := jobs.NewWorker(st, arts, workerOptions(cfg.Build, cfg.Builds.Workers, cfg.ShutdownTimeout, logger, workerExtensions(backups)))
	if err != nil {
		printConfigError(stderr, "serve", &config.Error{Flag: "--workers", Env: config.EnvName("workers"), Reason: err.Error()})
		return 2
	}

	srv, err := httpapi.New(cfg, deps)
	if err != nil {
		printConfigError(stderr, "serve", err)
		return 2
	}
	// Background work stops when serving ends, however it ends (deferred calls run in
	// reverse: cancel first, then wait).
	var bg sync.WaitGroup
	defer bg.Wait()
	bgCtx, stopBG := context.WithCancel(ctx)
	defer stopBG()
	bg.Go(func() { builds.Run(bgCtx) })
	bg.Go(func() {
		if err := runUntilStopped(bgCtx, worker, st, logger); err != nil {
			logger.Error("worker stopped with an error", slog.String("error", err.Error()))
		}
	})
	if cfg.Builds.MetricsListen != "" {
		stopMetrics, err := serveMetrics(ctx, cfg.Builds.MetricsListen, srv.MetricsHandler(), logger)
		if err != nil {
			printConfigError(stderr, "serve", &config.Error{Flag: "--metrics-listen", Env: config.EnvName("metrics-listen"), Reason: err.Error()})
			return 2
		}
		defer stopMetrics()
	}
	if err := srv.Run(ctx); err != nil {
		logger.Error("server stopped with an error", slog.String("error", err.Error()))
		return 1
	}
	// Stopped by SIGTERM/SIGINT after draining: a normal end for a server.
	return 0
}

// serveMetrics serves /metrics on its own listener until stop is called.
func serveMetrics(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelDebug)}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("serving metrics", slog.String("listen", ln.Addr().String()))
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}, nil
}

// parseCommandFlags parses args (and DEBATE_* variables) into fs. ok is false when the
// command must stop, with code as its exit code (0 after -h).
func parseCommandFlags(fs *flag.FlagSet, name, summary string, args []string, stderr io.Writer) (code int, ok bool) {
	usage := func() {
		fmt.Fprintf(stderr, "usage: debate %s [flags]\n\n%s\nEvery flag can also be set with the variable shown after it.\n\n", name, summary)
		config.Usage(stderr, fs)
	}
	if err := config.ParseFlags(fs, args, config.LookupEnv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage()
			return 0, false
		}
		printConfigError(stderr, name, err)
		return 2, false
	}
	return 0, true
}

// printConfigError prints each setting error on its own line.
func printConfigError(w io.Writer, cmd string, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(w, "debate %s: %s\n", cmd, line)
	}
}

func newLogger(w io.Writer, c config.Log) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func logMigrations(logger *slog.Logger, res *store.MigrateResult) {
	if len(res.Applied) == 0 && len(res.RiverApplied) == 0 {
		logger.Info("schema is current")
		return
	}
	logger.Info("migrations applied", slog.Any("debate", res.Applied), slog.Any("river", res.RiverApplied))
}
