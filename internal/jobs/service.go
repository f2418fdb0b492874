package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"debate/internal/artifact"
	"debate/internal/builder"
	"debate/internal/catalog"
	"debate/internal/recipe"
	"debate/internal/resolve"
	"debate/internal/store"
)

// Outcomes of a submission.
const (
	// OutcomeCacheHit: a succeeded build with the same build key exists; it is returned.
	OutcomeCacheHit = "cache_hit"
	// OutcomeInFlight: the same submission is already queued or running; it is returned.
	OutcomeInFlight = "in_flight"
	// OutcomeQueued: a new build was queued.
	OutcomeQueued = "queued"
)

// DefaultBuildEstimate is assumed for a build's run time until builds have been measured.
const DefaultBuildEstimate = 5 * time.Minute

// ErrQueueFull: the queue is at its configured limit; the submission was refused.
var ErrQueueFull = errors.New("build queue full")

// ErrSubmitLimit: the client queued as many builds as it may in the window.
var ErrSubmitLimit = errors.New("build submission limit reached")

// QueueFullError carries what a refused client needs to know.
type QueueFullError struct {
	Length     int
	Limit      int
	RetryAfter time.Duration
}

func (e *QueueFullError) Error() string {
	return fmt.Sprintf("the build queue is full (%d queued, limit %d); submit again in %s", e.Length, e.Limit, e.RetryAfter.Round(time.Second))
}
func (e *QueueFullError) Unwrap() error { return ErrQueueFull }

// SubmitLimitError carries the client's limit and when it may submit again.
type SubmitLimitError struct {
	Limit      int
	Window     time.Duration
	RetryAfter time.Duration
}

func (e *SubmitLimitError) Error() string {
	return fmt.Sprintf("this client queued %d builds in the last %s, the most allowed; submit again in %s (cache hits and builds already in flight are not limited)",
		e.Limit, e.Window, e.RetryAfter.Round(time.Second))
}
func (e *SubmitLimitError) Unwrap() error { return ErrSubmitLimit }

// ServiceOptions configure the API side of the build service.
type ServiceOptions struct {
	// PinMaxAge is how old pinned inputs may be to answer a cache hit at submission
	// (default 15 min). Older ones may no longer be the archive's state.
	PinMaxAge time.Duration
	// QueueLimit refuses submissions while this many builds are queued (0: no limit).
	QueueLimit int
	// SubmitLimit is how many builds one client may queue per SubmitWindow (0: no limit).
	SubmitLimit  int
	SubmitWindow time.Duration
	// StaleAfter is how old a worker's heartbeat may be for it to count as alive (for
	// queue estimates; default 30 s).
	StaleAfter time.Duration
	Logger     *slog.Logger
}

// Service is the build service as the API sees it: submissions, cancellation, status
// with queue estimates, event notifications and artifact files. Safe for concurrent use.
type Service struct {
	st        *store.Store
	artifacts *artifact.Store
	river     *river.Client[pgx.Tx]
	opts      ServiceOptions
	logger    *slog.Logger
	catalog   *catalog.Catalog

	hub hub

	// Counters of this process (cache hits answered at submission never reach the
	// database).
	instantHits atomic.Uint64
	enqueued    atomic.Uint64
	joined      atomic.Uint64
}

// NewService prepares the service; Run must be running for live event notifications.
func NewService(st *store.Store, arts *artifact.Store, opts ServiceOptions) (*Service, error) {
	if opts.PinMaxAge <= 0 {
		opts.PinMaxAge = 15 * time.Minute
	}
	if opts.SubmitWindow <= 0 {
		opts.SubmitWindow = time.Hour
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	// An insert-only client: no workers, no queues. It inserts jobs in our transactions
	// and cancels them (River tells the running worker through LISTEN/NOTIFY).
	rc, err := river.NewClient(riverpgxv5.New(st.Pool()), &river.Config{Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("jobs: river client: %w", err)
	}
	cat, err := catalog.Default()
	if err != nil {
		return nil, fmt.Errorf("jobs: layer catalog: %w", err)
	}
	return &Service{st: st, artifacts: arts, river: rc, opts: opts, logger: opts.Logger, catalog: cat,
		hub: hub{subs: map[string]map[chan struct{}]struct{}{}}}, nil
}

// Submission is the answer to a submitted recipe.
type Submission struct {
	Outcome string
	Status  *Status
}

// Effective composes a recipe's layers into the recipe a build will use. Its errors are
// *recipe.ValidationError (errors.Is recipe.ErrInvalid).
func (s *Service) Effective(r *recipe.Recipe) (*recipe.Recipe, error) {
	if len(r.Layers) == 0 {
		eff := r.Clone()
		eff.Normalize()
		return eff, nil
	}
	return resolve.Compose(r, s.catalog)
}

// Submit answers a recipe: an identical finished build (cache hit), the identical build
// already in flight, or a newly queued build. client is the submitter's rate-limit
// identity.
func (s *Service) Submit(ctx context.Context, r *recipe.Recipe, client string) (*Submission, error) {
	eff, err := s.Effective(r)
	if err != nil {
		return nil, err
	}
	recipeHash := eff.Hash()
	scopeHash, _ := pinScope(eff)
	subKey := submissionKey(recipeHash, scopeHash)

	// A cache hit without a worker: the pins a worker recorded for this scope give the
	// build key this recipe would get now.
	pins, err := s.st.FreshPins(ctx, scopeHash, builder.Version, s.opts.PinMaxAge)
	if err != nil {
		return nil, err
	}
	if len(pins) > 0 {
		keys := make([]string, 0, len(pins))
		for _, p := range pins {
			var pin builder.Pinned
			if err := json.Unmarshal(p.Pinned, &pin); err != nil {
				s.logger.Warn("unreadable pin ignored", slog.String("scope", scopeHash), slog.String("error", err.Error()))
				continue
			}
			keys = append(keys, builder.BuildKey(recipeHash, pin))
		}
		b, arts, stages, err := s.st.SucceededFull(ctx, keys)
		if err == nil {
			s.instantHits.Add(1)
			return &Submission{Outcome: OutcomeCacheHit, Status: &Status{Build: b, Artifacts: arts, Stages: stages}}, nil
		}
		if !errors.Is(err, store.ErrBuildNotFound) {
			return nil, err
		}
	}

	// Limits apply to new work only: joining a build in flight costs nothing.
	if s.opts.QueueLimit > 0 || s.opts.SubmitLimit > 0 {
		if b, err := s.st.InFlight(ctx, subKey); err == nil {
			return s.inFlight(ctx, b)
		} else if !errors.Is(err, store.ErrBuildNotFound) {
			return nil, err
		}
	}
	if s.opts.QueueLimit > 0 {
		n, err := s.st.QueueLength(ctx)
		if err != nil {
			return nil, err
		}
		if n >= s.opts.QueueLimit {
			return nil, &QueueFullError{Length: n, Limit: s.opts.QueueLimit, RetryAfter: s.retryAfter(ctx)}
		}
	}

	norm := eff.Clone()
	norm.Normalize()
	recipeJSON, err := json.Marshal(norm)
	if err != nil {
		return nil, fmt.Errorf("jobs: encode recipe: %w", err)
	}
	b, created, err := s.st.InsertBuild(ctx, store.NewBuild{
		Name: eff.Name, Recipe: recipeJSON, RecipeHash: recipeHash, ScopeHash: scopeHash,
		SubmissionKey: subKey, Client: client,
		// The client's limit is counted in the inserting transaction, under a lock per
		// client, so that it holds for concurrent submissions (on any server).
		ClientLimit: s.opts.SubmitLimit, ClientWindow: s.opts.SubmitWindow,
	}, func(ctx context.Context, tx pgx.Tx, id string) (int64, error) {
		res, err := s.river.InsertTx(ctx, tx, BuildArgs{BuildID: id}, nil)
		if err != nil {
			return 0, err
		}
		return res.Job.ID, nil
	})
	if cl, ok := errors.AsType[*store.ClientLimitError](err); ok {
		return nil, &SubmitLimitError{Limit: s.opts.SubmitLimit, Window: s.opts.SubmitWindow, RetryAfter: max(cl.RetryAfter, time.Second)}
	}
	if err != nil {
		return nil, err
	}
	if !created {
		return s.inFlight(ctx, b)
	}
	s.enqueued.Add(1)
	st, err := s.status(ctx, b)
	if err != nil {
		return nil, err
	}
	return &Submission{Outcome: OutcomeQueued, Status: st}, nil
}

func (s *Service) inFlight(ctx context.Context, b *store.Build) (*Submission, error) {
	s.joined.Add(1)
	st, err := s.status(ctx, b)
	if err != nil {
		return nil, err
	}
	return &Submission{Outcome: OutcomeInFlight, Status: st}, nil
}

// retryAfter suggests when a refused client may find room: about one build's time
// shared among the workers.
func (s *Service) retryAfter(ctx context.Context) time.Duration {
	qs, err := s.st.QueueSnapshot(ctx, &store.Build{ID: "00000000-0000-0000-0000-000000000000", CreatedAt: time.Unix(0, 0)}, s.opts.StaleAfter, 20)
	if err != nil {
		return time.Minute
	}
	d := median(qs.Durations, DefaultBuildEstimate) / time.Duration(max(qs.Capacity, 1))
	return min(max(d, 30*time.Second), 10*time.Minute)
}

// Status is a build with what a client wants to know about it.
type Status struct {
	Build     *store.Build
	Stages    []store.Stage
	Artifacts []store.Artifact
	// Queue is set while the build is queued.
	Queue *QueueEstimate
	// EstimatedFinish is set while the build runs.
	EstimatedFinish *time.Time
}

// QueueEstimate says where a queued build stands.
type QueueEstimate struct {
	// Position is 1 for the next build to start.
	Position        int
	EstimatedStart  time.Time
	EstimatedFinish time.Time
	// Basis says what the estimate rests on, e.g. "median of 12 recent builds, 2 workers".
	Basis string
}

// Status reads a build with its stages, artifacts and, while queued or running, an
// estimate.
func (s *Service) Status(ctx context.Context, id string) (*Status, error) {
	b, err := s.st.GetBuild(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.status(ctx, b)
}

func (s *Service) status(ctx context.Context, b *store.Build) (*Status, error) {
	st := &Status{Build: b}
	var err error
	switch b.Status {
	case store.StatusSucceeded:
		if st.Artifacts, err = s.st.Artifacts(ctx, b.ID); err != nil {
			return nil, err
		}
	case store.StatusQueued, store.StatusRunning:
		qs, err := s.st.QueueSnapshot(ctx, b, s.opts.StaleAfter, 20)
		if err != nil {
			return nil, err
		}
		est := estimate(qs, time.Now())
		if b.Status == store.StatusQueued {
			st.Queue = &est
		} else if b.StartedAt != nil {
			per := median(qs.Durations, DefaultBuildEstimate)
			f := b.StartedAt.Add(per)
			if now := time.Now(); f.Before(now) {
				f = now.Add(per / 10)
			}
			st.EstimatedFinish = &f
		}
	}
	if b.Status != store.StatusQueued {
		if st.Stages, err = s.st.Stages(ctx, b.ID); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// estimate places a queued build on the workers' slots: every running build holds a slot
// until its expected end (the median of recent run times, at least a tenth of it more
// than it has already run), every build ahead takes the earliest free slot for a median
// run time, and this build starts on the earliest slot after them.
func estimate(qs store.QueueSnapshot, now time.Time) QueueEstimate {
	per := median(qs.Durations, DefaultBuildEstimate)
	slots := max(qs.Capacity, 1)
	free := make([]time.Duration, slots)
	running := append([]time.Duration(nil), qs.RunningElapsed...)
	sort.Slice(running, func(i, j int) bool { return running[i] > running[j] })
	for i, el := range running {
		if i >= slots {
			break // more running than live capacity: heartbeats are late; ignore the extra
		}
		free[i] = max(per-el, per/10)
	}
	earliest := func() int {
		k := 0
		for i := range free {
			if free[i] < free[k] {
				k = i
			}
		}
		return k
	}
	for range min(qs.Ahead, 100000) {
		k := earliest()
		free[k] += per
	}
	start := free[earliest()]
	basis := fmt.Sprintf("median of %d recent builds", len(qs.Durations))
	if len(qs.Durations) == 0 {
		basis = fmt.Sprintf("no build measured yet: %s assumed per build", DefaultBuildEstimate)
	}
	if qs.Capacity == 0 {
		basis += "; no worker is running: the estimate assumes one starts now"
	} else {
		basis += fmt.Sprintf("; %d build slots on live workers", qs.Capacity)
	}
	return QueueEstimate{
		Position:        qs.Ahead + 1,
		EstimatedStart:  now.Add(start).UTC().Truncate(time.Second),
		EstimatedFinish: now.Add(start + per).UTC().Truncate(time.Second),
		Basis:           basis,
	}
}

func median(ds []time.Duration, def time.Duration) time.Duration {
	if len(ds) == 0 {
		return def
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Cancel stops a queued or running build. A finished build is returned unchanged with
// store.ErrBuildFinished.
func (s *Service) Cancel(ctx context.Context, id string) (*Status, error) {
	b, err := s.st.RequestCancel(ctx, id)
	if err != nil && !errors.Is(err, store.ErrBuildFinished) {
		return nil, err
	}
	finished := errors.Is(err, store.ErrBuildFinished)
	if !finished && b.RiverJobID != 0 {
		// Queued: River drops the job. Running: River cancels the job's context on the
		// worker that runs it, which kills the sandbox; the worker then records the end.
		if _, err := s.river.JobCancel(ctx, b.RiverJobID); err != nil && !errors.Is(err, river.ErrNotFound) {
			return nil, fmt.Errorf("jobs: cancel job %d: %w", b.RiverJobID, err)
		}
	}
	st, serr := s.status(ctx, b)
	if serr != nil {
		return nil, serr
	}
	if finished {
		return st, store.ErrBuildFinished
	}
	return st, nil
}

// Build reads a build's row alone (cheaper than Status).
func (s *Service) Build(ctx context.Context, id string) (*store.Build, error) {
	return s.st.GetBuild(ctx, id)
}

// Events returns up to limit stored events after seq.
func (s *Service) Events(ctx context.Context, id string, after, limit int) ([]store.Event, error) {
	return s.st.Events(ctx, id, after, limit)
}

// OpenArtifact opens a succeeded build's file by name.
func (s *Service) OpenArtifact(ctx context.Context, id, name string) (*os.File, *store.Artifact, error) {
	a, err := s.st.Artifact(ctx, id, name)
	if err != nil {
		return nil, nil, err
	}
	f, err := s.artifacts.Get(a.SHA256)
	if err != nil {
		return nil, nil, err
	}
	return f, a, nil
}

// Counters are this process's submission counters.
type Counters struct {
	InstantHits, Enqueued, Joined uint64
}

// Counters reads this process's submission counters.
func (s *Service) Counters() Counters {
	return Counters{InstantHits: s.instantHits.Load(), Enqueued: s.enqueued.Load(), Joined: s.joined.Load()}
}

// Metrics reads the build service's state from the database.
func (s *Service) Metrics(ctx context.Context, bounds []float64) (*store.BuildMetrics, error) {
	return s.st.BuildMetrics(ctx, bounds, s.opts.StaleAfter.Seconds())
}

// Subscribe returns a channel that receives a value whenever the build may have news
// (new events or a new status), and a function to stop. Notifications are coalesced:
// after one, re-read everything new.
func (s *Service) Subscribe(id string) (<-chan struct{}, func()) { return s.hub.subscribe(id) }

// Run listens for build notifications until ctx ends, reconnecting after failures.
func (s *Service) Run(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := s.st.ListenEvents(ctx, func() {
			backoff = 100 * time.Millisecond
			// Notifications sent while we were not listening are lost: wake everyone.
			s.hub.wakeAll()
		}, s.hub.wake)
		if ctx.Err() != nil {
			return
		}
		s.logger.Warn("build event listener lost its connection; reconnecting", slog.String("error", err.Error()), slog.Duration("in", backoff))
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// hub fans notifications out to the streams following a build.
type hub struct {
	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
}

func (h *hub) subscribe(id string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[id] == nil {
		h.subs[id] = map[chan struct{}]struct{}{}
	}
	h.subs[id][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[id], ch)
		if len(h.subs[id]) == 0 {
			delete(h.subs, id)
		}
		h.mu.Unlock()
	}
}

func (h *hub) wake(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs[id] {
		select {
		case ch <- struct{}{}:
		default: // already pending
		}
	}
}

func (h *hub) wakeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range h.subs {
		for ch := range m {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}
