package jobs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"debate/internal/artifact"
	"debate/internal/builder"
	"debate/internal/recipe"
	"debate/internal/sandbox"
	"debate/internal/store"
)

// WorkerOptions configure a worker process. Zero values take the documented defaults.
type WorkerOptions struct {
	// ID names the process in the workers table and as River client; default
	// hostname-pid-random. It must be unique per process.
	ID string
	// Concurrency is how many builds run at once; 0 runs no builds (an API server that
	// leaves them to other processes still runs maintenance and extensions).
	Concurrency int

	// Build settings, as for `debate build`.
	CacheDir, WorkDir      string
	Mirror, SecurityMirror string
	BuildTimeout           time.Duration // default builder.DefaultTimeout
	WarnAfter              time.Duration // default builder.DefaultWarnAfter
	ScriptTimeout          time.Duration
	Limits                 sandbox.Limits
	DiskLimit              int64

	// HeartbeatInterval (default 5 s) and StaleAfter (default 30 s): a worker whose
	// heartbeat is older than StaleAfter is dead, and the reaper (run by every worker at
	// start and every ReapInterval, default 10 s) hands its running jobs to others.
	HeartbeatInterval time.Duration
	StaleAfter        time.Duration
	ReapInterval      time.Duration
	// ShutdownTimeout is how long running builds may finish after a stop request before
	// they are cancelled and requeued (default 30 s).
	ShutdownTimeout time.Duration

	// LogRetention is how long a finished build's events (its log) are kept (default 30
	// days); RetentionInterval how often the retention job runs (default 1 h).
	LogRetention      time.Duration
	RetentionInterval time.Duration
	// PinMaxAge is the age at which the API stops trusting pinned inputs (default 15 min);
	// scopes used within PinScopeUsedWithin (default 24 h) get their pins refreshed before
	// then, every PinRefreshInterval (default PinMaxAge/3; negative disables).
	PinMaxAge          time.Duration
	PinScopeUsedWithin time.Duration
	PinRefreshInterval time.Duration

	// Extensions add other packages' River work (see Extension).
	Extensions []Extension
	Logger     *slog.Logger
}

func (o *WorkerOptions) defaults() error {
	if o.ID == "" {
		host, _ := os.Hostname()
		b := make([]byte, 4)
		_, _ = rand.Read(b)
		o.ID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
	}
	if o.Concurrency < 0 {
		return fmt.Errorf("jobs: concurrency %d: want 0 or more", o.Concurrency)
	}
	if o.WorkDir == "" {
		o.WorkDir = "/var/tmp/debate"
	}
	if o.BuildTimeout <= 0 {
		o.BuildTimeout = builder.DefaultTimeout
	}
	if o.WarnAfter <= 0 {
		o.WarnAfter = min(builder.DefaultWarnAfter, o.BuildTimeout*3/4)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.HeartbeatInterval, 5*time.Second)
	def(&o.StaleAfter, 30*time.Second)
	def(&o.ReapInterval, 10*time.Second)
	def(&o.ShutdownTimeout, 30*time.Second)
	def(&o.LogRetention, 30*24*time.Hour)
	def(&o.RetentionInterval, time.Hour)
	def(&o.PinMaxAge, 15*time.Minute)
	def(&o.PinScopeUsedWithin, 24*time.Hour)
	if o.PinRefreshInterval == 0 {
		o.PinRefreshInterval = max(o.PinMaxAge/3, time.Minute)
	}
	if o.StaleAfter < 2*o.HeartbeatInterval {
		return fmt.Errorf("jobs: the stale-after time (%s) must be at least twice the heartbeat interval (%s)", o.StaleAfter, o.HeartbeatInterval)
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return fmt.Errorf("jobs: work directory: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Worker runs build jobs and maintenance in this process.
type Worker struct {
	st        *store.Store
	artifacts *artifact.Store
	opts      WorkerOptions
	id        string
	logger    *slog.Logger
	river     *river.Client[pgx.Tx]
	stopping  atomic.Bool
	fence     fence
}

// NewWorker prepares a worker; Run starts it.
func NewWorker(st *store.Store, arts *artifact.Store, opts WorkerOptions) (*Worker, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	w := &Worker{st: st, artifacts: arts, opts: opts, id: opts.ID, logger: opts.Logger.With(slog.String("worker", opts.ID))}
	w.fence.reset()

	workers := river.NewWorkers()
	if err := river.AddWorkerSafely(workers, &buildWorker{w: w}); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &retentionWorker{w: w}); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if err := river.AddWorkerSafely(workers, &pinRefreshWorker{w: w}); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	// Every process registers every kind of ours and schedules every periodic job (River's
	// elected leader schedules from its own list, whichever process that is); which jobs a
	// process runs is decided by the queues it works: only build-capable processes work
	// QueueBuilds, where the pin refresh runs too.
	queues := map[string]river.QueueConfig{QueueMaintenance: {MaxWorkers: 2}}
	if opts.Concurrency > 0 {
		queues[QueueBuilds] = river.QueueConfig{MaxWorkers: opts.Concurrency}
	}
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(opts.RetentionInterval),
			func() (river.JobArgs, *river.InsertOpts) { return RetentionArgs{}, nil },
			&river.PeriodicJobOpts{ID: "debate.retention", RunOnStart: true}),
	}
	if opts.PinRefreshInterval > 0 {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(opts.PinRefreshInterval),
			func() (river.JobArgs, *river.InsertOpts) { return PinRefreshArgs{}, nil },
			&river.PeriodicJobOpts{ID: "debate.pin-refresh"}))
	}
	for _, ext := range opts.Extensions {
		if ext.Register != nil {
			if err := ext.Register(workers); err != nil {
				return nil, fmt.Errorf("jobs: extension %s: %w", ext.Name, err)
			}
		}
		for name, q := range ext.Queues {
			if _, dup := queues[name]; dup {
				return nil, fmt.Errorf("jobs: extension %s: queue %q already exists", ext.Name, name)
			}
			queues[name] = q
		}
		periodic = append(periodic, ext.Periodic...)
	}
	rc, err := river.NewClient(riverpgxv5.New(st.Pool()), &river.Config{
		ID:           w.id,
		Logger:       w.logger,
		Queues:       queues,
		Workers:      workers,
		PeriodicJobs: periodic,
		// River's own rescue is the last resort (a heartbeat row that keeps beating while
		// its job is stuck): it must not fire while a build may still be running.
		RescueStuckJobsAfter: opts.BuildTimeout + 30*time.Minute,
		// Finished build jobs are only bookkeeping: the build rows are the record.
		CompletedJobRetentionPeriod: 24 * time.Hour,
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	w.river = rc
	return w, nil
}

// ID is the worker's id (its River client id).
func (w *Worker) ID() string { return w.id }

// Run announces the worker, works jobs until ctx ends, then stops: new jobs are no
// longer fetched, running builds get ShutdownTimeout to finish, the rest are cancelled
// and go back to the queue.
func (w *Worker) Run(ctx context.Context) error {
	info := store.WorkerInfo{ID: w.id, PID: os.Getpid(), Version: builder.Version, Concurrency: w.opts.Concurrency}
	info.Hostname, _ = os.Hostname()
	if err := w.st.Heartbeat(ctx, info); err != nil {
		return err
	}
	// Builds of workers that died before we started go back to the queue now, and their
	// output folders here go away.
	w.reap(ctx)
	w.sweepOutputs()
	// Jobs run under a context of their own: stopping is done through River.
	if err := w.river.Start(context.WithoutCancel(ctx)); err != nil {
		return fmt.Errorf("jobs: start river: %w", err)
	}
	w.logger.Info("worker started", slog.Int("concurrency", w.opts.Concurrency), slog.String("work_dir", w.opts.WorkDir),
		slog.String("cache_dir", w.opts.CacheDir), slog.String("artifacts", w.artifacts.Root()))
	// Extensions' own loops (schedules) end before River stops, so that nothing is
	// enqueued by a worker that is going away.
	extCtx, stopExtensions := context.WithCancel(context.WithoutCancel(ctx))
	var extensions sync.WaitGroup
	for _, ext := range w.opts.Extensions {
		if ext.Run != nil {
			extensions.Go(func() { ext.Run(extCtx, w.river.Insert) })
		}
	}
	defer func() { stopExtensions(); extensions.Wait() }()

	beat := time.NewTicker(w.opts.HeartbeatInterval)
	defer beat.Stop()
	reap := time.NewTicker(w.opts.ReapInterval)
	defer reap.Stop()
	lastBeat := time.Now()
	for {
		select {
		case <-ctx.Done():
			stopExtensions()
			extensions.Wait()
			return w.stop(info)
		case <-beat.C:
			bctx, cancel := context.WithTimeout(ctx, w.opts.HeartbeatInterval)
			err := w.st.Heartbeat(bctx, info)
			cancel()
			if err == nil {
				lastBeat = time.Now()
				continue
			}
			if ctx.Err() != nil {
				continue
			}
			// Past two thirds of the stale time without a heartbeat, other workers are
			// about to take our builds: stop them here first, so that no build runs twice.
			if time.Since(lastBeat) > w.opts.StaleAfter*2/3 {
				w.logger.Error("heartbeat lost: abandoning running builds to other workers", slog.String("error", err.Error()))
				w.fence.trip()
			} else {
				w.logger.Warn("heartbeat failed", slog.String("error", err.Error()))
			}
		case <-reap.C:
			w.reap(ctx)
		}
	}
}

func (w *Worker) stop(info store.WorkerInfo) error {
	w.stopping.Store(true)
	w.logger.Info("worker stopping: no new jobs; running builds may finish", slog.Duration("within", w.opts.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), w.opts.ShutdownTimeout)
	err := w.river.Stop(sctx)
	cancel()
	if err != nil {
		w.logger.Info("cancelling the builds still running; they go back to the queue")
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err = w.river.StopAndCancel(cctx)
		cancel()
	}
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if serr := w.st.StopWorker(dctx, info.ID); serr != nil {
		w.logger.Warn("could not record the stop", slog.String("error", serr.Error()))
	}
	w.logger.Info("worker stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("jobs: stop: %w", err)
	}
	return nil
}

func (w *Worker) reap(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	jobs, err := w.st.ReapStaleJobs(rctx, w.opts.StaleAfter)
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Warn("reaping jobs of dead workers failed", slog.String("error", err.Error()))
		}
		return
	}
	for _, j := range jobs {
		w.logger.Warn("job of a dead worker made available again", slog.Int64("job", j.ID), slog.String("kind", j.Kind),
			slog.String("dead_worker", j.WorkerID), slog.String("args", string(j.Args)))
	}
}

// sweepOutputs removes the output folders (out-*, pins-*) that builds of killed workers
// left in the work directory. Folders younger than any build may be are left alone:
// another worker process on this machine may be using them.
func (w *Worker) sweepOutputs() {
	for _, pattern := range []string{"out-*", "pins-*"} {
		dirs, _ := filepath.Glob(filepath.Join(w.opts.WorkDir, pattern))
		for _, d := range dirs {
			fi, err := os.Stat(d)
			if err != nil || !fi.IsDir() || time.Since(fi.ModTime()) < w.opts.BuildTimeout+time.Hour {
				continue
			}
			if err := os.RemoveAll(d); err == nil {
				w.logger.Info("removed the output folder of an interrupted build", slog.String("dir", d))
			}
		}
	}
}

// builderOptions are the worker's build settings for one build.
func (w *Worker) builderOptions(r *recipe.Recipe, outDir string) builder.Options {
	return builder.Options{
		Recipe: r, OutDir: outDir, CacheDir: w.opts.CacheDir, WorkDir: w.opts.WorkDir,
		Mirror: w.opts.Mirror, SecurityMirror: w.opts.SecurityMirror,
		Timeout: w.opts.BuildTimeout, WarnAfter: w.opts.WarnAfter, ScriptTimeout: w.opts.ScriptTimeout,
		Limits: w.opts.Limits, DiskLimit: w.opts.DiskLimit,
	}
}

// fence is cancelled when the worker can no longer prove it is alive; builds watch it.
type fence struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelFunc
}

func (f *fence) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctx, f.cancel = context.WithCancel(context.Background())
}

func (f *fence) current() context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctx
}

// trip cancels the builds that run now; builds started later get a fresh fence.
func (f *fence) trip() {
	f.mu.Lock()
	cancel := f.cancel
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.mu.Unlock()
	cancel()
}
