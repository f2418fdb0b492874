package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/riverqueue/river"

	"debate/internal/builder"
	"debate/internal/recipe"
	"debate/internal/store"
)

// BuildArgs is the River job of one queued build; the build row holds everything else.
type BuildArgs struct {
	BuildID string `json:"build_id"`
}

// Kind names the job in River.
func (BuildArgs) Kind() string { return "debate.build" }

// InsertOpts puts builds on their own queue. A build that fails in the user's terms
// (unknown package, script failed, …) is recorded as failed and the job completes; only
// infrastructure trouble (the database gone mid-build) makes River retry.
func (BuildArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: QueueBuilds, MaxAttempts: buildMaxAttempts}
}

const buildMaxAttempts = 5

type buildWorker struct {
	river.WorkerDefaults[BuildArgs]
	w *Worker
}

// Timeout is River's limit for the job: above the build's own timeout, which the builder
// enforces with a classified error, leaving time to publish the artifacts.
func (bw *buildWorker) Timeout(*river.Job[BuildArgs]) time.Duration {
	return bw.w.opts.BuildTimeout + 10*time.Minute
}

func (bw *buildWorker) Work(ctx context.Context, job *river.Job[BuildArgs]) error {
	w := bw.w
	id := job.Args.BuildID
	log := w.logger.With(slog.String("build", id), slog.Int("attempt", job.Attempt))
	b, offset, err := w.st.ClaimBuild(ctx, id, w.id, job.Attempt)
	if errors.Is(err, store.ErrBuildFinished) {
		log.Info("build already finished; nothing to do", slog.String("status", b.Status))
		return nil
	}
	if errors.Is(err, store.ErrBuildNotFound) {
		log.Warn("job for a build that does not exist; dropped")
		return nil
	}
	if err != nil {
		return err
	}
	ew := newEventWriter(w.st, id, w.id, offset, log)
	if offset > 0 {
		ew.append(builder.Event{Type: builder.EventWarning, Message: fmt.Sprintf(
			"the build restarted on worker %s (attempt %d): the worker that ran it before stopped", w.id, job.Attempt)})
	}
	if b.CancelAt != nil {
		return w.finishCancelled(ctx, ew, b, "cancelled before it started", log)
	}

	r, err := recipe.Parse(b.Recipe, recipe.JSON)
	if err != nil {
		// Stored by the API after validation: only a schema change between versions gets here.
		info := builder.ErrorInfo{Code: "invalid_recipe", Message: "the stored recipe is no longer valid: " + err.Error(),
			Hint: "submit the recipe again"}
		return w.finishFailed(ctx, ew, b, store.StatusFailed, info, log)
	}

	outDir, err := os.MkdirTemp(w.opts.WorkDir, "out-")
	if err != nil {
		return fmt.Errorf("jobs: output directory: %w", err)
	}
	defer os.RemoveAll(outDir)

	// The build runs under the job's context (River cancels it on a cancel request or at
	// shutdown) and under the worker's fence (cancelled when our heartbeats stop reaching
	// the database, since another worker may take the build over then).
	bctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopFence := context.AfterFunc(w.fence.current(), func() { cancel(errFenced) })
	defer stopFence()

	var hit *store.Build
	var key string
	opts := w.builderOptions(r, outDir)
	opts.Events = ew.add
	opts.OnPinned = func(p builder.Pinned) { w.recordPin(bctx, r, p, log) }
	opts.AfterResolve = func(k string) error {
		key = k
		if err := w.st.SetBuildKey(bctx, id, w.id, k); err != nil {
			return err
		}
		found, err := w.st.SucceededByKeys(bctx, []string{k})
		if errors.Is(err, store.ErrBuildNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		hit = found
		return builder.ErrStop
	}
	start := time.Now()
	log.Info("build started", slog.String("name", b.Name))
	res, err := builder.Build(bctx, opts)
	switch {
	case errors.Is(err, builder.ErrStop) && hit != nil:
		arts, aerr := w.st.Artifacts(ctx, hit.ID)
		if aerr != nil {
			return aerr
		}
		end := builder.Event{Type: builder.EventBuildEnd, Seconds: time.Since(start).Seconds(),
			Message: "cache hit: build " + hit.ID + " delivered the identical image (same build key); its artifacts are this build's",
			Result:  resultFrom(b, key, arts, time.Since(start))}
		log.Info("cache hit after resolve", slog.String("same_as", hit.ID))
		return ignoreNotOwner(w.st.FinishSucceeded(ctx, id, w.id, key, hit.ID, arts, ew.drain(&end)), log)

	case err == nil:
		arts, perr := w.publish(res)
		if perr != nil {
			info := builder.ErrorInfo{Code: "publish_failed", Stage: builder.StageManifest,
				Message: "the image was built but could not be stored: " + perr.Error(),
				Hint:    "the artifact store is full or unwritable: tell the operator"}
			return w.finishFailed(ctx, ew, b, store.StatusFailed, info, log)
		}
		log.Info("build succeeded", slog.Duration("took", time.Since(start).Round(time.Second)), slog.String("sha256", res.ISO.SHA256))
		return ignoreNotOwner(w.st.FinishSucceeded(ctx, id, w.id, res.BuildKey, "", arts, ew.drain(ew.heldEnd())), log)
	}

	// Failed or stopped: why?
	cause := context.Cause(bctx)
	requested, rerr := w.st.CancelRequested(context.WithoutCancel(ctx), id)
	switch {
	case rerr == nil && requested:
		return w.finishCancelled(context.WithoutCancel(ctx), ew, b, "cancelled while running", log)
	case errors.Is(cause, errFenced):
		// Another worker may already run this build: leave everything to it.
		_ = ew.close(context.WithoutCancel(ctx), nil)
		log.Warn("build abandoned: this worker lost its database heartbeat")
		return fmt.Errorf("jobs: build %s abandoned: heartbeat lost", id)
	case w.stopping.Load() && ctx.Err() != nil:
		wctx := context.WithoutCancel(ctx)
		_ = ew.close(wctx, &builder.Event{Type: builder.EventWarning,
			Message: "the worker is shutting down: the build goes back to the queue and starts again on a worker"})
		if err := w.st.Requeue(wctx, id, w.id); err != nil {
			log.Warn("requeue failed", slog.String("error", err.Error()))
		}
		log.Info("build requeued: worker shutting down")
		return fmt.Errorf("jobs: build %s interrupted by worker shutdown", id)
	}
	info := builder.ErrorInfo{Code: "stage_failed", Message: err.Error()}
	var be *builder.Error
	if errors.As(err, &be) {
		info = be.Info
	}
	return w.finishFailed(context.WithoutCancel(ctx), ew, b, store.StatusFailed, info, log)
}

var errFenced = errors.New("worker heartbeat lost")

func (w *Worker) finishCancelled(ctx context.Context, ew *eventWriter, b *store.Build, msg string, log *slog.Logger) error {
	info := builder.ErrorInfo{Code: "cancelled", Message: msg}
	if held := ew.heldEnd(); held != nil && held.Error != nil {
		info.Stage = held.Error.Stage
	}
	return w.finishFailed(ctx, ew, b, store.StatusCancelled, info, log)
}

func (w *Worker) finishFailed(ctx context.Context, ew *eventWriter, b *store.Build, status string, info builder.ErrorInfo, log *slog.Logger) error {
	end := ew.heldEnd()
	if end == nil || end.Error == nil || end.Error.Code != info.Code {
		end = &builder.Event{Type: builder.EventBuildEnd, Message: "build " + status, Error: &info}
	}
	data, err := json.Marshal(info)
	if err != nil {
		return err
	}
	log.Info("build ended", slog.String("status", status), slog.String("code", info.Code), slog.String("stage", info.Stage))
	return ignoreNotOwner(w.st.FinishFailed(ctx, b.ID, w.id, status, data, ew.drain(end)), log)
}

// ignoreNotOwner: the build was taken over (or cancelled) meanwhile; its new owner
// records the outcome, so this attempt's is dropped without retrying the job.
func ignoreNotOwner(err error, log *slog.Logger) error {
	if errors.Is(err, store.ErrNotOwner) {
		log.Warn("outcome not recorded: the build is no longer this worker's")
		return nil
	}
	return err
}

// publish moves the build's files into the content-addressed store (each written to a
// temporary file, synced and renamed by the store) and describes them.
func (w *Worker) publish(res *builder.Result) ([]store.Artifact, error) {
	var out []store.Artifact
	for _, a := range res.Artifacts {
		digest, size, err := w.artifacts.Put(a.Path, a.SHA256)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a.Name, err)
		}
		out = append(out, store.Artifact{Name: a.Name, SHA256: digest, Size: size, ContentType: contentType(a.Name)})
	}
	return out, nil
}

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".iso"):
		return "application/x-iso9660-image"
	case strings.HasSuffix(name, ".json"):
		return "application/json"
	case strings.HasSuffix(name, "SHA256SUMS"):
		return "text/plain; charset=utf-8"
	default:
		return "application/octet-stream"
	}
}

// resultFrom describes a cache-hit build's result from the artifacts it shares.
func resultFrom(b *store.Build, key string, arts []store.Artifact, took time.Duration) *builder.Result {
	r := &builder.Result{Name: b.Name, RecipeHash: b.RecipeHash, BuildKey: key, Seconds: took.Seconds()}
	for _, a := range arts {
		ba := builder.Artifact{Name: a.Name, Size: a.Size, SHA256: a.SHA256}
		r.Artifacts = append(r.Artifacts, ba)
		if filepath.Ext(a.Name) == ".iso" {
			r.ISO = ba
		}
	}
	return r
}

// recordPin stores the inputs this worker pinned for the recipe's scope.
func (w *Worker) recordPin(ctx context.Context, r *recipe.Recipe, p builder.Pinned, log *slog.Logger) {
	scope, base := pinScope(r)
	data, err := json.Marshal(p)
	if err == nil {
		err = w.st.RecordPin(ctx, base, store.Pin{ScopeHash: scope, InputsHash: inputsHash(p), Builder: p.Builder, Pinned: data})
	}
	if err != nil {
		// Only the next submission's instant cache hit is lost.
		log.Warn("recording the pinned inputs failed", slog.String("error", err.Error()))
	}
}
