package jobs

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"time"

	"debate/internal/builder"
	"debate/internal/store"
)

// eventWriter stores a build's events in batches. The builder calls add from its output
// goroutines and must never wait for the database, so add only appends under a lock; a
// goroutine flushes every flushEvery (or sooner when many are pending), in one
// transaction per batch with one notification to the streams that follow the build.
//
// Sequence numbers continue after the events already stored for the build, so that a
// retried build's events follow the earlier attempt's and Last-Event-ID stays valid.
type eventWriter struct {
	st       *store.Store
	buildID  string
	workerID string
	offset   int
	logger   *slog.Logger

	mu      sync.Mutex
	pending []store.Event
	stages  []store.StageUpdate
	next    int // the last seq handed out
	kick    chan struct{}
	done    chan struct{}
	stopped chan struct{}
	held    *builder.Event // the build-end event: stored once the outcome is recorded
}

const (
	flushEvery = 200 * time.Millisecond
	flushBatch = 500
)

func newEventWriter(st *store.Store, buildID, workerID string, offset int, logger *slog.Logger) *eventWriter {
	w := &eventWriter{st: st, buildID: buildID, workerID: workerID, offset: offset, next: offset, logger: logger,
		kick: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go w.loop()
	return w
}

// add takes one builder event. build-end is held back: the worker decides what the end
// of this attempt means (a worker-side cache hit, a requeue) before it is stored.
func (w *eventWriter) add(e builder.Event) {
	if e.Type == builder.EventBuildEnd {
		w.mu.Lock()
		w.held = &e
		w.mu.Unlock()
		return
	}
	w.append(e)
}

// append stores e with the next sequence number.
func (w *eventWriter) append(e builder.Event) {
	// Paths are the worker's own temporary files: meaningless to a client.
	if e.Result != nil {
		r := *e.Result
		r.ISO.Path = ""
		r.Artifacts = slices.Clone(r.Artifacts)
		for i := range r.Artifacts {
			r.Artifacts[i].Path = ""
		}
		e.Result = &r
	}
	w.mu.Lock()
	w.next++
	e.Seq = w.next
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	data, err := json.Marshal(e)
	if err != nil {
		w.mu.Unlock()
		w.logger.Error("event not encodable; dropped", slog.String("error", err.Error()))
		return
	}
	w.pending = append(w.pending, store.Event{Seq: e.Seq, Type: e.Type, Data: data})
	switch e.Type {
	case builder.EventStageStart:
		w.stages = append(w.stages, store.StageUpdate{Stage: e.Stage, Position: stagePosition(e.Stage), StartedAt: e.Time})
	case builder.EventStageEnd:
		sec := e.Seconds
		w.stages = append(w.stages, store.StageUpdate{Stage: e.Stage, Position: stagePosition(e.Stage),
			StartedAt: e.Time.Add(-time.Duration(sec * float64(time.Second))), Seconds: &sec})
	}
	n := len(w.pending)
	w.mu.Unlock()
	if n >= flushBatch || e.Type != builder.EventLog {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

func stagePosition(stage string) int {
	if i := slices.Index(builder.Stages, stage); i >= 0 {
		return i
	}
	return len(builder.Stages)
}

func (w *eventWriter) loop() {
	defer close(w.stopped)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		case <-w.kick:
			// Let a burst gather: a stage end usually comes with a few more events.
			time.Sleep(20 * time.Millisecond)
		}
		w.flush(context.Background())
	}
}

// flush writes what is pending. A failed write is kept and retried at the next flush.
func (w *eventWriter) flush(ctx context.Context) error {
	w.mu.Lock()
	events, stages := w.pending, w.stages
	w.pending, w.stages = nil, nil
	w.mu.Unlock()
	if len(events) == 0 && len(stages) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	err := w.st.AppendEvents(ctx, w.buildID, w.workerID, events, stages)
	if err != nil {
		w.logger.Warn("storing build events failed; will retry", slog.String("build", w.buildID), slog.String("error", err.Error()))
		w.mu.Lock()
		w.pending = append(events, w.pending...)
		w.stages = append(stages, w.stages...)
		w.mu.Unlock()
	}
	return err
}

// close stops the flushing goroutine and writes what is left, the final event included.
func (w *eventWriter) close(ctx context.Context, final *builder.Event) error {
	close(w.done)
	<-w.stopped
	if final != nil {
		w.append(*final)
	}
	var err error
	for range 3 {
		if err = w.flush(ctx); err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return err
}

// drain stops the flushing goroutine and returns what is not stored yet, the final
// event included, for the worker to store together with the build's outcome.
func (w *eventWriter) drain(final *builder.Event) store.Final {
	close(w.done)
	<-w.stopped
	if final != nil {
		w.append(*final)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	f := store.Final{Events: w.pending, Stages: w.stages}
	w.pending, w.stages = nil, nil
	return f
}

// heldEnd returns the build-end event the builder emitted, if any.
func (w *eventWriter) heldEnd() *builder.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.held
}
