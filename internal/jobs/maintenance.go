package jobs

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"debate/internal/builder"
)

// OnceAtATime keeps at most one unfinished job of a kind (River UniqueOpts): a periodic
// job whose last run is still going (or waiting) is not queued again, however many times
// it is inserted.
func OnceAtATime() river.UniqueOpts {
	return river.UniqueOpts{ByState: []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
		rivertype.JobStateRunning, rivertype.JobStateScheduled, rivertype.JobStateRetryable}}
}

// RetentionArgs is the periodic job that removes old build logs.
type RetentionArgs struct{}

// Kind names the job in River.
func (RetentionArgs) Kind() string { return "debate.retention" }

// InsertOpts puts the job on the maintenance queue, once at a time.
func (RetentionArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueMaintenance, MaxAttempts: 3,
		UniqueOpts: OnceAtATime()}
}

type retentionWorker struct {
	river.WorkerDefaults[RetentionArgs]
	w *Worker
}

func (rw *retentionWorker) Timeout(*river.Job[RetentionArgs]) time.Duration { return 10 * time.Minute }

// Work removes the events (logs) of builds finished longer than LogRetention ago, in
// batches so that no transaction grows large, plus stale pins and worker rows, and the
// artifact store's temporary files left by killed workers.
func (rw *retentionWorker) Work(ctx context.Context, _ *river.Job[RetentionArgs]) error {
	w := rw.w
	total := 0
	for {
		res, err := w.st.RemoveOldLogs(ctx, w.opts.LogRetention, 200)
		if err != nil {
			return err
		}
		total += res.LogsRemoved
		if res.LogsRemoved < 200 {
			break
		}
	}
	swept, _ := w.artifacts.Sweep(w.opts.BuildTimeout + time.Hour)
	if total > 0 || swept > 0 {
		w.logger.Info("retention", slog.Int("build_logs_removed", total), slog.Int("artifact_temporaries_removed", swept),
			slog.Duration("log_retention", w.opts.LogRetention))
	}
	return nil
}

// PinRefreshArgs is the periodic job that re-resolves the pin scopes in use, so that a
// submission finds fresh pinned inputs and its cache hit is answered at once.
type PinRefreshArgs struct{}

// Kind names the job in River.
func (PinRefreshArgs) Kind() string { return "debate.pin-refresh" }

// InsertOpts puts the job on the builds queue, once at a time: only processes that can
// build work that queue, and a refresh (a resolve, seconds) is a small build.
func (PinRefreshArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueBuilds, MaxAttempts: 1,
		UniqueOpts: OnceAtATime()}
}

type pinRefreshWorker struct {
	river.WorkerDefaults[PinRefreshArgs]
	w *Worker
}

func (pw *pinRefreshWorker) Timeout(*river.Job[PinRefreshArgs]) time.Duration {
	return 15 * time.Minute
}

// Work resolves (only) each scope used lately whose newest pin is past half its allowed
// age: a build stopped by AfterResolve, which records the pin through OnPinned.
func (pw *pinRefreshWorker) Work(ctx context.Context, _ *river.Job[PinRefreshArgs]) error {
	w := pw.w
	scopes, err := w.st.ScopesToRefresh(ctx, builder.Version, w.opts.PinScopeUsedWithin, w.opts.PinMaxAge/2, 20)
	if err != nil {
		return err
	}
	for _, sc := range scopes {
		r, err := scopeRecipe(sc.Base)
		if err != nil {
			w.logger.Warn("pin scope skipped", slog.String("scope", sc.Hash), slog.String("error", err.Error()))
			continue
		}
		out, err := os.MkdirTemp(w.opts.WorkDir, "pins-")
		if err != nil {
			return err
		}
		opts := w.builderOptions(r, out)
		opts.Timeout = min(w.opts.BuildTimeout, 5*time.Minute)
		opts.WarnAfter = opts.Timeout
		opts.OnPinned = func(p builder.Pinned) { w.recordPin(ctx, r, p, w.logger) }
		opts.AfterResolve = func(string) error { return builder.ErrStop }
		start := time.Now()
		_, err = builder.Build(ctx, opts)
		os.RemoveAll(out)
		if err != nil && !errors.Is(err, builder.ErrStop) {
			w.logger.Warn("pin refresh failed", slog.String("scope", sc.Hash), slog.String("error", err.Error()))
			continue
		}
		w.logger.Info("pins refreshed", slog.String("scope", sc.Hash), slog.Duration("took", time.Since(start).Round(time.Millisecond)))
	}
	return nil
}
