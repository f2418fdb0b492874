package backup

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"debate/internal/artifact"
	"debate/internal/config"
	"debate/internal/jobs"
	"debate/internal/store"
)

// runWorker runs a Debate worker process's River client (as debate worker or debate
// serve run it) until the test ends.
func runWorker(t *testing.T, st *store.Store, id string, ext []jobs.Extension) {
	t.Helper()
	arts, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := jobs.NewWorker(st, arts, jobs.WorkerOptions{ID: id, WorkDir: t.TempDir(), Extensions: ext,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker %s: %v", id, err)
		}
	})
}

// riverLeader is the id of River's elected leader ("" for none).
func riverLeader(t *testing.T, st *store.Store) string {
	t.Helper()
	id, err := st.RiverLeader(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestScheduledBackupsRunWhicheverProcessLeads runs a cluster as deployed: a `debate
// worker` without the backup folder that is River's elected leader, and two servers
// that share the backup folder. The servers' watchdog (run at start) takes a backup and
// verifies it, so readiness turns healthy by itself; then every scheduled occurrence is
// enqueued exactly once, although both servers schedule it and neither leads, and runs
// on a server.
func TestScheduledBackupsRunWhicheverProcessLeads(t *testing.T) {
	st, _ := migrated(t)
	fill(t, st) // something to back up (its old run record belongs to no folder)
	dir := t.TempDir()
	ctx := testCtx(t)

	runWorker(t, st, "builder-only", nil)
	for riverLeader(t, st) != "builder-only" {
		if ctx.Err() != nil {
			t.Fatal("the builder-only worker was never elected leader")
		}
		time.Sleep(50 * time.Millisecond)
	}

	const every2s = every(2 * time.Second)
	started := time.Now()
	var svc *Service
	for _, id := range []string{"server-a", "server-b"} {
		svc = New(st, testConfig(dir), slog.New(slog.DiscardHandler))
		svc.plan[0].when = every2s // the daily backup, every two seconds
		runWorker(t, st, id, []jobs.Extension{svc.Extension()})
	}

	for {
		ok, detail := svc.Health(ctx)
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not healthy after start: %s", detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("healthy %s after the servers started", time.Since(started).Round(time.Millisecond))

	// Wait for three occurrences to complete, then look at what ran.
	type slotRow struct {
		slot         string
		jobs         int
		done, served bool
	}
	var slots []slotRow
	completed, runs := 0, 0
	// Completed jobs and recorded backups both: under load a dump may outlast its slot,
	// and the next slot's job then completes without a dump (another backup holds the
	// lock), as it should.
	for completed < 3 || runs < 3 {
		if ctx.Err() != nil {
			t.Fatalf("%d scheduled backups completed and %d recorded at one every 2 s, want 3 and 3: %+v", completed, runs, slots)
		}
		if err := st.Pool().QueryRow(ctx, `SELECT count(*) FROM backup_runs WHERE kind = 'backup' AND ok AND started_at >= $1`,
			started).Scan(&runs); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		rows, err := st.Pool().Query(ctx, `SELECT args->>'slot', count(*), bool_and(state = 'completed'),
				bool_and(coalesce(attempted_by[1], '') IN ('server-a', 'server-b'))
			FROM river_job WHERE kind = 'debate_backup' AND args ? 'slot'
			GROUP BY 1 ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		slots, completed = slots[:0], 0
		for rows.Next() {
			var r slotRow
			if err := rows.Scan(&r.slot, &r.jobs, &r.done, &r.served); err != nil {
				t.Fatal(err)
			}
			slots = append(slots, r)
			if r.done {
				completed++
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d occurrences enqueued, %d completed, %s after start", len(slots), completed, time.Since(started).Round(time.Millisecond))
	if l := riverLeader(t, st); l != "builder-only" {
		t.Fatalf("leader changed to %q: the test no longer shows a non-server leader", l)
	}
	for i, r := range slots {
		if r.jobs != 1 {
			t.Errorf("occurrence %s: %d jobs, want 1 (both servers scheduled it)", r.slot, r.jobs)
		}
		if !r.done && i < len(slots)-2 { // the newest may still be waiting or running
			t.Errorf("occurrence %s: not completed while later ones are", r.slot)
		}
		if r.done && !r.served {
			t.Errorf("occurrence %s: not worked by a server", r.slot)
		}
	}
	es, err := List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) < 3 {
		t.Fatalf("%d dumps in the folder, want at least 3", len(es))
	}
	for _, e := range es {
		if !e.Complete {
			t.Errorf("dump %s incomplete", e.Name())
		}
	}
}

func TestEverySchedulesOnTheClock(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 59, 59, 0, time.UTC)
	if got, want := every(time.Hour).Next(at), time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Next(%s) = %s, want %s", at, got, want)
	}
	on := time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)
	if got, want := every(time.Hour).Next(on), on.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("Next(%s) = %s, want %s (strictly after)", on, got, want)
	}
}

// The insert options, against River and PostgreSQL: an occurrence of the backup is
// enqueued once however many servers enqueue it, and a watchdog waiting (behind a long
// dump) is not joined by another.
func TestScheduledInsertsAreEnqueuedOnce(t *testing.T) {
	st, _ := migrated(t)
	ctx := testCtx(t)
	client, err := river.NewClient(riverpgxv5.New(st.Pool()), &river.Config{}) // insert-only
	if err != nil {
		t.Fatal(err)
	}
	plan := defaultPlan(testConfig(t.TempDir()))
	slot := time.Date(2026, 12, 3, 3, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		r    recurring
		slot time.Time
		dup  bool
	}{
		{plan[0], slot, false},
		{plan[0], slot, true},                      // the other server, same occurrence
		{plan[0], slot.Add(24 * time.Hour), false}, // the next occurrence
		{plan[1], slot, false},                     // the verification of that slot
		{plan[2], slot, false},                     // a watchdog
		{plan[2], slot.Add(time.Hour), true},       // the next hour's, the first still waiting
		{recurring{name: "start-up", args: plan[2].args}, time.Now().UTC(), true}, // a start-up one
	} {
		res, err := client.Insert(ctx, tc.r.args(tc.slot), tc.r.opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.UniqueSkippedAsDuplicate != tc.dup {
			t.Errorf("%s at %s: duplicate %v, want %v", tc.r.name, tc.slot, res.UniqueSkippedAsDuplicate, tc.dup)
		}
	}
}

// The schedule follows the settings: --backup-at for the backup, --backup-verify-at for
// the verification, on the hour for the watchdog.
func TestPlanFollowsTheSettings(t *testing.T) {
	cfg := testConfig(t.TempDir())
	var err error
	if cfg.At, err = config.ParseTimeOfWeek("05:30"); err != nil {
		t.Fatal(err)
	}
	if cfg.VerifyAt, err = config.ParseTimeOfWeek("wed 06:15"); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 10, 20, 0, 0, time.UTC) // a Thursday
	want := map[string]time.Time{
		"backup":       time.Date(2026, 12, 4, 5, 30, 0, 0, time.UTC),
		"verification": time.Date(2026, 12, 9, 6, 15, 0, 0, time.UTC),
		"watchdog":     time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC),
	}
	plan := defaultPlan(cfg)
	if len(plan) != len(want) {
		t.Fatalf("%d scheduled jobs, want %d", len(plan), len(want))
	}
	for _, r := range plan {
		if got := r.when.Next(now); !got.Equal(want[r.name]) {
			t.Errorf("%s next at %s, want %s", r.name, got, want[r.name])
		}
	}
}
