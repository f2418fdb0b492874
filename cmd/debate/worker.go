package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"debate/internal/artifact"
	"debate/internal/backup"
	"debate/internal/builder"
	"debate/internal/config"
	"debate/internal/jobs"
	"debate/internal/sandbox"
	"debate/internal/store"
)

func runWorker(ctx context.Context, args []string, _, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	validate := config.WorkerFlags(fs, config.LookupEnv)
	if code, ok := parseCommandFlags(fs, "worker", "Run queued builds (and periodic maintenance) from the database. Workers on other machines need only the\ndatabase URL and the artifact store (a shared directory), as root with the build tools installed.", args, stderr); !ok {
		return code
	}
	cfg, err := validate()
	if err != nil {
		printConfigError(stderr, "worker", err)
		return 2
	}
	logs := newLogBuffer(stderr, 100*time.Millisecond)
	defer logs.Close()
	logger := newLogger(logs, cfg.Log)
	logger = slog.New(flushOnWarn{logger.Handler(), logs.Flush})

	if err := canBuild(); err != nil {
		fmt.Fprintf(stderr, "debate worker: %v\n", err)
		return 2
	}
	st, err := store.Open(ctx, cfg.Database.URL, store.Options{MaxConns: cfg.Database.MaxConns, Logger: logger})
	if err != nil {
		printConfigError(stderr, "worker", &config.Error{Flag: "--database-url", Env: "DATABASE_URL", Reason: err.Error()})
		return 2
	}
	defer st.Close()
	arts, err := artifact.Open(cfg.Build.ArtifactDir)
	if err != nil {
		printConfigError(stderr, "worker", &config.Error{Flag: "--artifact-dir", Env: config.EnvName("artifact-dir"), Reason: err.Error()})
		return 2
	}
	w, err := jobs.NewWorker(st, arts, workerOptions(cfg.Build, cfg.Concurrency, cfg.ShutdownTimeout, logger, nil))
	if err != nil {
		fmt.Fprintf(stderr, "debate worker: %v\n", err)
		return 2
	}
	if err := runUntilStopped(ctx, w, st, logger); err != nil {
		logger.Error("worker stopped with an error", slog.String("error", err.Error()))
		return 1
	}
	return 0
}

// canBuild checks what every build needs of this machine, so that a worker that cannot
// build says so at start instead of failing every build it takes.
func canBuild() error {
	if err := sandbox.Available(); err != nil {
		return fmt.Errorf("this machine cannot run build sandboxes: %w", err)
	}
	if missing := builder.MissingTools(); len(missing) > 0 {
		return fmt.Errorf("build tools missing: %s (install them with make deps)", strings.Join(missing, ", "))
	}
	return nil
}

// workerOptions turns the build settings into the worker's options.
func workerOptions(b config.Build, concurrency int, shutdown time.Duration, logger *slog.Logger, ext []jobs.Extension) jobs.WorkerOptions {
	return jobs.WorkerOptions{
		Concurrency: concurrency,
		CacheDir:    b.CacheDir, WorkDir: b.WorkDir,
		Mirror: b.Mirror, SecurityMirror: b.SecurityMirror,
		BuildTimeout: b.Timeout, WarnAfter: b.WarnAfter, ScriptTimeout: b.ScriptTimeout,
		Limits:            sandbox.Limits{MemoryBytes: b.Memory, Pids: b.Pids, CPUs: b.CPUs},
		DiskLimit:         b.Disk,
		HeartbeatInterval: b.HeartbeatInterval, StaleAfter: b.StaleAfter,
		ShutdownTimeout: shutdown,
		LogRetention:    b.LogRetention,
		PinMaxAge:       b.PinMaxAge,
		Extensions:      ext,
		Logger:          logger,
	}
}

// workerExtensions are the other packages' River work, for the processes that run them.
// Backups run where their folder is configured: the server (debate serve --backup-dir),
// which also keeps their schedule.
func workerExtensions(b *backup.Service) []jobs.Extension {
	var out []jobs.Extension
	if b != nil {
		out = append(out, b.Extension())
	}
	return out
}

// runUntilStopped runs the worker until ctx ends. A database that is not reachable or
// not migrated yet is waited for (retrying every few seconds, saying why), as a server
// started together with its database must.
func runUntilStopped(ctx context.Context, w *jobs.Worker, st *store.Store, logger *slog.Logger) error {
	for {
		err := ready(ctx, st)
		if err == nil {
			return w.Run(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		logger.Warn("worker waiting for the database", slog.String("reason", err.Error()))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// ready checks that the database answers with the schema this binary expects.
func ready(ctx context.Context, st *store.Store) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	status, err := st.MigrationStatus(cctx)
	if err != nil {
		return err
	}
	if !status.Current() {
		return errors.New("schema not current: " + status.String() + " (run: debate migrate)")
	}
	return nil
}
