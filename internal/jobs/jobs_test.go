package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"debate/internal/artifact"
	"debate/internal/builder"
	"debate/internal/pgtest"
	"debate/internal/recipe"
	"debate/internal/store"
)

// These tests run against a real PostgreSQL (a throw-away cluster) and River; the builds
// themselves are exercised end to end in cmd/debate's tests.

var pg pgtest.Harness

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func migrated(t *testing.T) *store.Store { return migratedDB(t, 16) }

// migratedDB is a database of its own, copied from a migrated template.
func migratedDB(t testing.TB, maxConns int32) *store.Store {
	t.Helper()
	url := pg.NewDatabaseFrom(t, "migrated", store.MigrateURL)
	st, err := store.Open(context.Background(), url, store.Options{MaxConns: maxConns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func newService(t *testing.T, st *store.Store, opts ServiceOptions) *Service {
	t.Helper()
	arts, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(st, arts, opts)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

const minimal = `apiVersion: debate/v1
name: minimal
base: {distribution: debian, release: bookworm, architecture: amd64}
packages: [less]
`

func parse(t *testing.T, doc string) *recipe.Recipe {
	t.Helper()
	r, err := recipe.Parse([]byte(doc), recipe.Auto)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func count(t *testing.T, st *store.Store, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Identical submissions racing each other make one build and one job: the unique index
// on the in-flight submission key decides, not the application.
func TestConcurrentIdenticalSubmissionsMakeOneBuild(t *testing.T) {
	st := migrated(t)
	svc := newService(t, st, ServiceOptions{})
	r := parse(t, minimal)
	const n = 8
	subs := make([]*Submission, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			subs[i], errs[i] = svc.Submit(testCtx(t), r, "198.51.100.1")
		})
	}
	close(start)
	wg.Wait()
	queued := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("submission %d: %v", i, errs[i])
		}
		if subs[i].Status.Build.ID != subs[0].Status.Build.ID {
			t.Fatalf("submission %d got build %s, submission 0 got %s", i, subs[i].Status.Build.ID, subs[0].Status.Build.ID)
		}
		switch subs[i].Outcome {
		case OutcomeQueued:
			queued++
		case OutcomeInFlight:
		default:
			t.Fatalf("submission %d: outcome %s", i, subs[i].Outcome)
		}
	}
	if queued != 1 {
		t.Fatalf("%d submissions queued a build; want exactly 1", queued)
	}
	if b, j := count(t, st, "SELECT count(*) FROM builds"), count(t, st, "SELECT count(*) FROM river_job WHERE kind = 'debate.build'"); b != 1 || j != 1 {
		t.Fatalf("%d builds and %d jobs; want 1 and 1", b, j)
	}
	b := subs[0].Status.Build
	if b.RiverJobID == 0 || b.Status != store.StatusQueued || subs[0].Status.Queue == nil || subs[0].Status.Queue.Position != 1 {
		t.Fatalf("queued build: %+v queue %+v", b, subs[0].Status.Queue)
	}

	// The same recipe written differently (package order, JSON) is the same submission;
	// another mirror is not (it may be at another point in time).
	again := parse(t, `{"apiVersion":"debate/v1","name":"minimal","packages":["less","less"],
		"base":{"distribution":"debian","release":"bookworm","architecture":"amd64"}}`)
	if s, err := svc.Submit(testCtx(t), again, "x"); err != nil || s.Status.Build.ID != b.ID || s.Outcome != OutcomeInFlight {
		t.Fatalf("same recipe as JSON: %+v %v", s, err)
	}
	other := parse(t, minimal+"  \n")
	other.Base.Mirror = "http://mirror.example/debian"
	if s, err := svc.Submit(testCtx(t), other, "x"); err != nil || s.Status.Build.ID == b.ID || s.Outcome != OutcomeQueued {
		t.Fatalf("other mirror: %+v %v", s, err)
	}
}

func TestSubmissionLimits(t *testing.T) {
	st := migrated(t)
	svc := newService(t, st, ServiceOptions{QueueLimit: 2, SubmitLimit: 1})
	recipeNamed := func(name string) *recipe.Recipe {
		return parse(t, strings.Replace(minimal, "name: minimal", "name: "+name, 1))
	}
	if _, err := svc.Submit(testCtx(t), recipeNamed("a"), "client-1"); err != nil {
		t.Fatal(err)
	}
	// The client's hourly allowance is spent…
	_, err := svc.Submit(testCtx(t), recipeNamed("b"), "client-1")
	var sl *SubmitLimitError
	if !errors.As(err, &sl) || !errors.Is(err, ErrSubmitLimit) || sl.RetryAfter < 50*time.Minute || sl.RetryAfter > time.Hour {
		t.Fatalf("second build of client-1: %v (%+v)", err, sl)
	}
	// …but joining a build in flight costs nothing.
	if s, err := svc.Submit(testCtx(t), recipeNamed("a"), "client-1"); err != nil || s.Outcome != OutcomeInFlight {
		t.Fatalf("joining: %+v %v", s, err)
	}
	if _, err := svc.Submit(testCtx(t), recipeNamed("b"), "client-2"); err != nil {
		t.Fatal(err)
	}
	// Two queued: the queue is full for everyone.
	_, err = svc.Submit(testCtx(t), recipeNamed("c"), "client-3")
	var qf *QueueFullError
	if !errors.As(err, &qf) || qf.Length != 2 || qf.RetryAfter < 30*time.Second {
		t.Fatalf("third queued build: %v (%+v)", err, qf)
	}
	if !strings.Contains(err.Error(), "2 queued") {
		t.Errorf("message does not give the queue length: %v", err)
	}
}

// The client's limit holds for concurrent submissions: it is counted in the inserting
// transaction under a lock per client, so ten at once with room for three queue three.
func TestSubmissionLimitHoldsUnderConcurrency(t *testing.T) {
	st := migrated(t)
	svc := newService(t, st, ServiceOptions{SubmitLimit: 3})
	var wg sync.WaitGroup
	results := make([]error, 10)
	for i := range results {
		r := parse(t, strings.Replace(minimal, "name: minimal", fmt.Sprintf("name: concurrent-%d", i), 1))
		wg.Go(func() {
			_, results[i] = svc.Submit(testCtx(t), r, "eager-client")
		})
	}
	wg.Wait()
	queued, limited := 0, 0
	for _, err := range results {
		switch {
		case err == nil:
			queued++
		case errors.Is(err, ErrSubmitLimit):
			limited++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if queued != 3 || limited != 7 {
		t.Fatalf("%d queued and %d refused, want 3 and 7", queued, limited)
	}
	var stored int
	if err := st.Pool().QueryRow(testCtx(t), `SELECT count(*) FROM builds WHERE client = 'eager-client'`).Scan(&stored); err != nil || stored != 3 {
		t.Fatalf("%d builds stored for the client (%v), want 3", stored, err)
	}
	// Another client is not held back by this one.
	if _, err := svc.Submit(testCtx(t), parse(t, strings.Replace(minimal, "name: minimal", "name: other", 1)), "calm-client"); err != nil {
		t.Fatal(err)
	}
}

// A cache hit at submission: pins a worker recorded for the scope give the build key, and
// a succeeded build with that key is returned without a new build. Pins older than the
// allowed age are not trusted.
func TestInstantCacheHitFromRecordedPins(t *testing.T) {
	st := migrated(t)
	svc := newService(t, st, ServiceOptions{PinMaxAge: time.Minute})
	r := parse(t, minimal)
	first, err := svc.Submit(testCtx(t), r, "c")
	if err != nil {
		t.Fatal(err)
	}
	id := first.Status.Build.ID
	// What a worker does: claim, record the pinned inputs, finish with the artifacts.
	if _, _, err := st.ClaimBuild(testCtx(t), id, "w1", 1); err != nil {
		t.Fatal(err)
	}
	eff, _ := svc.Effective(r)
	pin := builder.Pinned{Suites: map[string]string{"bookworm": strings.Repeat("a", 64)}, Tools: map[string]string{"mmdebstrap": "1.3.5-7"}, Builder: builder.Version}
	data, _ := json.Marshal(pin)
	scope, base := pinScope(eff)
	if err := st.RecordPin(testCtx(t), base, store.Pin{ScopeHash: scope, InputsHash: inputsHash(pin), Builder: pin.Builder, Pinned: data}); err != nil {
		t.Fatal(err)
	}
	key := builder.BuildKey(eff.Hash(), pin)
	arts := []store.Artifact{{Name: "minimal.iso", SHA256: strings.Repeat("b", 64), Size: 3, ContentType: "application/x-iso9660-image"}}
	if err := st.FinishSucceeded(testCtx(t), id, "w1", key, "", arts, store.Final{}); err != nil {
		t.Fatal(err)
	}
	// A late write of another worker is refused.
	if err := st.FinishSucceeded(testCtx(t), id, "w2", key, "", nil, store.Final{}); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("finish by a worker that does not own the build: %v", err)
	}

	start := time.Now()
	hit, err := svc.Submit(testCtx(t), r, "c")
	took := time.Since(start)
	if err != nil || hit.Outcome != OutcomeCacheHit || hit.Status.Build.ID != id || len(hit.Status.Artifacts) != 1 {
		t.Fatalf("second submission: %+v %v", hit, err)
	}
	t.Logf("cache hit answered in %s", took)
	if n := count(t, st, "SELECT count(*) FROM builds"); n != 1 {
		t.Fatalf("%d builds after a cache hit", n)
	}

	// Pins past their age: the archive may have moved; a new build is queued.
	if _, err := st.Pool().Exec(testCtx(t), "UPDATE build_pins SET resolved_at = now() - interval '2 minutes'"); err != nil {
		t.Fatal(err)
	}
	miss, err := svc.Submit(testCtx(t), r, "c")
	if err != nil || miss.Outcome != OutcomeQueued || miss.Status.Build.ID == id {
		t.Fatalf("with stale pins: %+v %v", miss, err)
	}
}

// The reaper hands running jobs of workers whose heartbeat is stale to others, and
// leaves those of live workers alone.
func TestReaperRequeuesOnlyDeadWorkersJobs(t *testing.T) {
	st := migrated(t)
	ctx := testCtx(t)
	rc, err := river.NewClient(riverpgxv5.New(st.Pool()), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	dead, err := rc.Insert(ctx, BuildArgs{BuildID: "00000000-0000-0000-0000-000000000001"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	alive, err := rc.Insert(ctx, BuildArgs{BuildID: "00000000-0000-0000-0000-000000000002"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"dead-worker", "live-worker"} {
		if err := st.Heartbeat(ctx, store.WorkerInfo{ID: w, Hostname: "h", PID: 1, Version: "v", Concurrency: 1}); err != nil {
			t.Fatal(err)
		}
	}
	exec := func(sql string, args ...any) {
		if _, err := st.Pool().Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec(`UPDATE workers SET heartbeat_at = now() - interval '1 minute' WHERE id = 'dead-worker'`)
	exec(`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '5 minutes',
		attempted_by = ARRAY[$2] WHERE id = $1`, dead.Job.ID, "dead-worker")
	exec(`UPDATE river_job SET state = 'running', attempt = 1, attempted_at = now() - interval '5 minutes',
		attempted_by = ARRAY[$2] WHERE id = $1`, alive.Job.ID, "live-worker")

	reaped, err := st.ReapStaleJobs(ctx, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(reaped) != 1 || reaped[0].ID != dead.Job.ID || reaped[0].WorkerID != "dead-worker" {
		t.Fatalf("reaped %+v; want only job %d", reaped, dead.Job.ID)
	}
	state := func(id int64) string {
		var s string
		if err := st.Pool().QueryRow(ctx, "SELECT state FROM river_job WHERE id = $1", id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if state(dead.Job.ID) != "available" || state(alive.Job.ID) != "running" {
		t.Fatalf("states: dead worker's job %s, live worker's job %s", state(dead.Job.ID), state(alive.Job.ID))
	}
	// A worker that stopped cleanly is not alive either.
	exec(`UPDATE workers SET stopped_at = now() WHERE id = 'live-worker'`)
	if reaped, _ := st.ReapStaleJobs(ctx, 30*time.Second); len(reaped) != 1 || reaped[0].ID != alive.Job.ID {
		t.Fatalf("after a clean stop: %+v", reaped)
	}
}

// Events are stored in batches with sequence numbers that continue across attempts; the
// stage timings are kept; a worker that lost the build writes nothing.
func TestEventWriterSequencesAndOwnership(t *testing.T) {
	st := migrated(t)
	svc := newService(t, st, ServiceOptions{})
	sub, err := svc.Submit(testCtx(t), parse(t, minimal), "c")
	if err != nil {
		t.Fatal(err)
	}
	id := sub.Status.Build.ID
	wake, stop := svc.Subscribe(id)
	defer stop()
	lctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go svc.Run(lctx)

	_, offset, err := st.ClaimBuild(testCtx(t), id, "w1", 1)
	if err != nil || offset != 0 {
		t.Fatalf("claim: offset %d, %v", offset, err)
	}
	ew := newEventWriter(st, id, "w1", offset, discard())
	now := time.Now().UTC()
	ew.add(builder.Event{Seq: 1, Type: builder.EventBuildStart, Time: now})
	ew.add(builder.Event{Seq: 2, Type: builder.EventStageStart, Stage: builder.StageResolve, Time: now})
	for i := range 1200 {
		ew.add(builder.Event{Type: builder.EventLog, Stage: builder.StageResolve, Message: "line " + string(rune('a'+i%26)), Time: now})
	}
	ew.add(builder.Event{Type: builder.EventStageEnd, Stage: builder.StageResolve, Seconds: 2.5, Time: now.Add(2500 * time.Millisecond)})
	// Notified while the build runs (the listener is up within a moment).
	select {
	case <-wake:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification for stored events")
	}
	if err := ew.close(testCtx(t), &builder.Event{Type: builder.EventWarning, Message: "end of attempt"}); err != nil {
		t.Fatal(err)
	}
	evs, err := svc.Events(testCtx(t), id, 0, 5000)
	if err != nil || len(evs) != 1204 {
		t.Fatalf("%d events stored, %v; want 1204", len(evs), err)
	}
	for i, e := range evs {
		if e.Seq != i+1 {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		var be builder.Event
		if err := json.Unmarshal(e.Data, &be); err != nil || be.Seq != e.Seq || be.Type != e.Type {
			t.Fatalf("event %d data %s: %v", i, e.Data, err)
		}
	}
	stages, err := st.Stages(testCtx(t), id)
	if err != nil || len(stages) != 1 || stages[0].Seconds == nil || *stages[0].Seconds != 2.5 {
		t.Fatalf("stages %+v %v", stages, err)
	}

	// A second attempt on another worker continues the numbering; the first worker's
	// late events are dropped.
	_, offset, err = st.ClaimBuild(testCtx(t), id, "w2", 2)
	if err != nil || offset != 1204 {
		t.Fatalf("second claim: offset %d, %v", offset, err)
	}
	late := newEventWriter(st, id, "w1", 1204, discard())
	_ = late.close(testCtx(t), &builder.Event{Type: builder.EventLog, Message: "zombie"})
	second := newEventWriter(st, id, "w2", offset, discard())
	_ = second.close(testCtx(t), &builder.Event{Type: builder.EventBuildStart})
	evs, _ = svc.Events(testCtx(t), id, 1204, 10)
	if len(evs) != 1 || evs[0].Seq != 1205 || evs[0].Type != builder.EventBuildStart {
		t.Fatalf("after the second claim: %+v", evs)
	}
}

func TestRetentionRemovesOldLogsOnly(t *testing.T) {
	st := migrated(t)
	svc := newService(t, st, ServiceOptions{})
	var ids []string
	for _, name := range []string{"old", "new"} {
		s, err := svc.Submit(testCtx(t), parse(t, strings.Replace(minimal, "name: minimal", "name: "+name, 1)), "c")
		if err != nil {
			t.Fatal(err)
		}
		id := s.Status.Build.ID
		ids = append(ids, id)
		if _, _, err := st.ClaimBuild(testCtx(t), id, "w", 1); err != nil {
			t.Fatal(err)
		}
		ew := newEventWriter(st, id, "w", 0, discard())
		_ = ew.close(testCtx(t), &builder.Event{Type: builder.EventLog, Message: "hello"})
		if err := st.FinishFailed(testCtx(t), id, "w", store.StatusFailed, []byte(`{"code":"x","message":"y"}`), store.Final{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Pool().Exec(testCtx(t), "UPDATE builds SET finished_at = now() - interval '31 days' WHERE id = $1", ids[0]); err != nil {
		t.Fatal(err)
	}
	res, err := st.RemoveOldLogs(testCtx(t), 30*24*time.Hour, 100)
	if err != nil || res.LogsRemoved != 1 {
		t.Fatalf("retention: %+v %v", res, err)
	}
	old, _ := svc.Events(testCtx(t), ids[0], 0, 10)
	recent, _ := svc.Events(testCtx(t), ids[1], 0, 10)
	b, _ := st.GetBuild(testCtx(t), ids[0])
	if len(old) != 0 || len(recent) != 1 || b.LogsRemovedAt == nil || b.Status != store.StatusFailed {
		t.Fatalf("old events %d, recent %d, old build %+v", len(old), len(recent), b)
	}
}

func TestEstimate(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	min := time.Minute
	for _, c := range []struct {
		name        string
		qs          store.QueueSnapshot
		start, done time.Duration
	}{
		{"idle, nothing measured", store.QueueSnapshot{Capacity: 1}, 0, DefaultBuildEstimate},
		{"no worker alive: assume one", store.QueueSnapshot{}, 0, DefaultBuildEstimate},
		{"one running half way", store.QueueSnapshot{Capacity: 1, RunningElapsed: []time.Duration{2 * min}, Durations: []time.Duration{4 * min}}, 2 * min, 6 * min},
		{"two ahead, two slots", store.QueueSnapshot{Capacity: 2, Ahead: 2, Durations: []time.Duration{3 * min, 4 * min, 5 * min}}, 4 * min, 8 * min},
		{"overdue build counts a tenth", store.QueueSnapshot{Capacity: 1, RunningElapsed: []time.Duration{9 * min}, Durations: []time.Duration{4 * min}}, 24 * time.Second, 4*min + 24*time.Second},
	} {
		e := estimate(c.qs, now)
		if e.EstimatedStart != now.Add(c.start) || e.EstimatedFinish != now.Add(c.done) || e.Position != c.qs.Ahead+1 || e.Basis == "" {
			t.Errorf("%s: start +%s finish +%s pos %d (%s); want +%s +%s", c.name, e.EstimatedStart.Sub(now), e.EstimatedFinish.Sub(now), e.Position, e.Basis, c.start, c.done)
		}
	}
}

func TestPinScope(t *testing.T) {
	a := parse(t, minimal)
	b := parse(t, strings.Replace(minimal, "packages: [less]", "packages: [nano, less]", 1))
	ha, _ := pinScope(a)
	hb, _ := pinScope(b)
	if ha != hb {
		t.Error("packages changed the pin scope")
	}
	c := parse(t, minimal)
	c.Base.Snapshot = "20250101T000000Z"
	if hc, _ := pinScope(c); hc == ha {
		t.Error("a snapshot did not change the pin scope")
	}
	_, base := pinScope(a)
	r, err := scopeRecipe(base)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := pinScope(r); h != ha {
		t.Errorf("the refresh recipe of a scope has another scope: %s vs %s", h, ha)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// The last events and the outcome are stored together: a client that reads build-end
// finds the final status; a worker that lost the build stores neither.
func TestOutcomeAndLastEventsTogether(t *testing.T) {
	st := migrated(t)
	svc := newService(t, st, ServiceOptions{})
	sub, err := svc.Submit(testCtx(t), parse(t, minimal), "c")
	if err != nil {
		t.Fatal(err)
	}
	id := sub.Status.Build.ID
	if _, _, err := st.ClaimBuild(testCtx(t), id, "w1", 1); err != nil {
		t.Fatal(err)
	}
	stale := newEventWriter(st, id, "w1", 0, discard())
	stale.add(builder.Event{Type: builder.EventLog, Message: "from the first worker"})
	if _, _, err := st.ClaimBuild(testCtx(t), id, "w2", 2); err != nil {
		t.Fatal(err)
	}
	end := builder.Event{Type: builder.EventBuildEnd, Error: &builder.ErrorInfo{Code: "script_failed", Message: "x"}}
	if err := st.FinishFailed(testCtx(t), id, "w1", store.StatusFailed, []byte(`{"code":"script_failed","message":"x"}`), stale.drain(&end)); !errors.Is(err, store.ErrNotOwner) {
		t.Fatalf("finish by the worker that lost the build: %v", err)
	}
	if evs, _ := svc.Events(testCtx(t), id, 0, 10); len(evs) != 0 {
		t.Fatalf("the stale worker's events were stored: %+v", evs)
	}
	ew := newEventWriter(st, id, "w2", 0, discard())
	ew.add(builder.Event{Type: builder.EventLog, Message: "from the second worker"})
	ew.add(end) // held back until the outcome is known
	if err := st.FinishFailed(testCtx(t), id, "w2", store.StatusFailed, []byte(`{"code":"script_failed","message":"x"}`), ew.drain(ew.heldEnd())); err != nil {
		t.Fatal(err)
	}
	evs, _ := svc.Events(testCtx(t), id, 0, 10)
	b, _ := st.GetBuild(testCtx(t), id)
	if len(evs) != 2 || evs[1].Type != builder.EventBuildEnd || b.Status != store.StatusFailed {
		t.Fatalf("events %+v, status %s", evs, b.Status)
	}
}
