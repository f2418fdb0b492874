package backup

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// TestRiverWatchdogBacksUpAndVerifiesAtStart runs the backup jobs on a real River client:
// on a fresh installation the watchdog (run at start) takes a backup and verifies it, so
// readiness turns healthy by itself; a scheduled backup job then adds a second dump.
func TestRiverWatchdogBacksUpAndVerifiesAtStart(t *testing.T) {
	st, _ := migrated(t)
	fill(t, st)
	dir := t.TempDir()
	ctx := testCtx(t)
	cfg := testConfig(dir)
	svc := New(st, cfg, slog.New(slog.DiscardHandler))
	workers := river.NewWorkers()
	if err := svc.Register(workers); err != nil {
		t.Fatal(err)
	}
	client, err := river.NewClient(riverpgxv5.New(st.Pool()), &river.Config{
		Queues: Queues(), Workers: workers, PeriodicJobs: svc.PeriodicJobs(),
		Logger:            slog.New(slog.DiscardHandler),
		FetchCooldown:     20 * time.Millisecond,
		FetchPollInterval: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = client.Stop(sctx)
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, detail := svc.Health(ctx)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not healthy 60 s after start: %s", detail)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("healthy %s after the client started", time.Since(started).Round(time.Millisecond))
	es, _ := List(dir)
	if len(es) != 1 || !es[0].Complete {
		t.Fatalf("after the watchdog: %+v", es)
	}

	// The daily job, inserted as the periodic scheduler would.
	sub, cancelSub := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	defer cancelSub()
	if _, err := client.Insert(ctx, BackupArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-sub:
			if ev.Job.Kind != (BackupArgs{}).Kind() {
				continue
			}
			if ev.Kind != river.EventKindJobCompleted {
				t.Fatalf("backup job %s: %v", ev.Kind, ev.Job.Errors)
			}
			es, _ = List(dir)
			if len(es) != 2 || !es[0].Complete || !es[1].Complete {
				t.Fatalf("after the backup job: %+v", es)
			}
			return
		case <-ctx.Done():
			t.Fatal("backup job did not finish")
		}
	}
}
