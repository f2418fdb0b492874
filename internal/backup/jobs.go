package backup

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"debate/internal/config"
	"debate/internal/jobs"
	"debate/internal/store"
)

// Queue is the River queue backup jobs run in. Only a process that has the backup folder
// and the PostgreSQL client tools should work it, with one worker (QueueConfig): backups
// of one database happen one at a time anyway (they share an advisory lock).
const Queue = "backups"

// QueueConfig is the River queue configuration for Queue.
func QueueConfig() river.QueueConfig { return river.QueueConfig{MaxWorkers: 1} }

// watchdogEvery is how often the watchdog looks for an overdue backup or verification.
const watchdogEvery = time.Hour

// BackupArgs is the daily backup job: dump, record, prune.
type BackupArgs struct {
	// Slot is the scheduled time this job is for (zero when inserted by hand). It makes
	// each occurrence's job unique: servers that all schedule it enqueue it once.
	Slot time.Time `json:"slot,omitzero"`
}

// Kind names the job in River.
func (BackupArgs) Kind() string { return "debate_backup" }

// InsertOpts puts the job in the backup queue.
func (BackupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 3}
}

// VerifyArgs is the verification job: restore a dump (File, or the newest) into a
// scratch database and compare.
type VerifyArgs struct {
	File string    `json:"file,omitempty"`
	Slot time.Time `json:"slot,omitzero"` // as in BackupArgs
}

// Kind names the job in River.
func (VerifyArgs) Kind() string { return "debate_backup_verify" }

// InsertOpts puts the job in the backup queue.
func (VerifyArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 2}
}

// WatchdogArgs is the hourly (and at start-up) check that takes an overdue backup or
// verification: after downtime over the scheduled hour, on a fresh installation, or
// after a failed run (see due).
type WatchdogArgs struct {
	Slot time.Time `json:"slot,omitzero"` // when it was due, for the record
}

// Kind names the job in River.
func (WatchdogArgs) Kind() string { return "debate_backup_watchdog" }

// InsertOpts puts the job in the backup queue, one unfinished at a time: a watchdog stuck
// behind a long dump (a stalled disk, up to --backup-timeout) is not joined by one more
// every hour, to run back to back once the dump ends.
func (WatchdogArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 1, UniqueOpts: jobs.OnceAtATime()}
}

// Register adds the backup workers (the Register of a jobs.Extension).
func (s *Service) Register(w *river.Workers) error {
	if err := river.AddWorkerSafely(w, &backupWorker{s: s}); err != nil {
		return err
	}
	if err := river.AddWorkerSafely(w, &verifyWorker{s: s}); err != nil {
		return err
	}
	return river.AddWorkerSafely(w, &watchdogWorker{s: s})
}

// Queues are the River queues the backup jobs use (the Queues of a jobs.Extension).
func Queues() map[string]river.QueueConfig { return map[string]river.QueueConfig{Queue: QueueConfig()} }

// Extension is the backup work of a process that has the backup folder and the
// PostgreSQL client tools (debate serve --backup-dir): the backup queue, its workers and
// the schedule (RunSchedule).
func (s *Service) Extension() jobs.Extension {
	return jobs.Extension{Name: "backup", Register: s.Register, Queues: Queues(), Run: s.RunSchedule}
}

// Schedule says when a recurring job is due: Next is the first occurrence strictly
// after t. config.TimeOfWeek is one.
type Schedule interface{ Next(t time.Time) time.Time }

// every is a schedule at a fixed interval, aligned to the clock (hourly: on the hour).
type every time.Duration

func (d every) Next(t time.Time) time.Time { return t.Truncate(time.Duration(d)).Add(time.Duration(d)) }

// recurring is one scheduled job: when, its arguments for an occurrence, and the insert
// options that make servers enqueue each occurrence once.
type recurring struct {
	name string
	when Schedule
	args func(slot time.Time) river.JobArgs
	opts *river.InsertOpts
}

// defaultPlan is the schedule of cfg: the daily backup (At), the verification
// (VerifyAt, weekly by default) and the hourly watchdog.
func defaultPlan(cfg config.Backup) []recurring {
	// Each occurrence once: the slot is in the arguments.
	perSlot := &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}}
	return []recurring{
		{"backup", cfg.At, func(t time.Time) river.JobArgs { return BackupArgs{Slot: t} }, perSlot},
		{"verification", cfg.VerifyAt, func(t time.Time) river.JobArgs { return VerifyArgs{Slot: t} }, perSlot},
		// Its own options: one unfinished at a time, whatever its slot.
		{"watchdog", every(watchdogEvery), func(t time.Time) river.JobArgs { return WatchdogArgs{Slot: t} }, nil},
	}
}

// scheduleRetry is how soon an occurrence whose job could not be enqueued is tried again.
const scheduleRetry = 15 * time.Second

// RunSchedule enqueues the backup jobs when they are due, until ctx ends; it is the Run
// of the Extension. It enqueues a watchdog at once, which catches up on anything missed
// while no server with the backup folder ran.
//
// Why not River's periodic jobs: River enqueues those from its elected leader's own list,
// and the leader may be a `debate worker` that has neither the backup folder nor the
// schedule; backups then stopped for as long as it led. The schedule lives with the
// processes that do the work instead. When several servers have the folder, each
// enqueues every occurrence; the occurrence's time is in the job's arguments and the
// insert is unique by arguments, so the job runs once (the watchdog: at most one waiting
// or running, whoever enqueued it).
func (s *Service) RunSchedule(ctx context.Context, insert jobs.Inserter) {
	if _, err := insert(ctx, WatchdogArgs{Slot: time.Now().UTC()}, nil); err != nil && ctx.Err() == nil {
		s.logger.Warn("could not enqueue the start-up backup watchdog; the hourly one follows", slog.String("error", err.Error()))
	}
	plan := s.plan
	now := time.Now()
	next := make([]time.Time, len(plan))  // the occurrence each waits for
	retry := make([]time.Time, len(plan)) // not before: after a failed insert
	for i, r := range plan {
		next[i] = r.when.Next(now)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		// At most a minute's sleep: wall-clock jumps (suspend, NTP) are noticed soon.
		wait := time.Minute
		for i := range plan {
			wait = min(wait, time.Until(later(next[i], retry[i])))
		}
		timer.Reset(max(wait, 0))
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now = time.Now()
		for i, r := range plan {
			if now.Before(later(next[i], retry[i])) {
				continue
			}
			slot := next[i].UTC()
			res, err := insert(ctx, r.args(slot), r.opts)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.logger.Warn("could not enqueue a scheduled backup job; retrying", slog.String("job", r.name),
					slog.Time("slot", slot), slog.String("error", err.Error()))
				retry[i] = now.Add(scheduleRetry)
				continue
			}
			if res.UniqueSkippedAsDuplicate {
				s.logger.Debug("scheduled backup job already enqueued (by another server, or still waiting)", slog.String("job", r.name), slog.Time("slot", slot))
			} else {
				s.logger.Info("scheduled backup job enqueued", slog.String("job", r.name), slog.Time("slot", slot))
			}
			// Occurrences missed meanwhile (a long outage of the database) are not made up
			// one by one: the watchdog takes whatever is overdue.
			next[i], retry[i] = r.when.Next(now), time.Time{}
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

type backupWorker struct {
	river.WorkerDefaults[BackupArgs]
	s *Service
}

func (w *backupWorker) Timeout(*river.Job[BackupArgs]) time.Duration {
	return w.s.cfg.Timeout + time.Minute
}

func (w *backupWorker) Work(ctx context.Context, _ *river.Job[BackupArgs]) error {
	_, _, err := w.s.Backup(ctx)
	if errors.Is(err, ErrBusy) {
		// Someone is taking a backup right now (debate backup by hand): that one counts.
		w.s.logger.Info("scheduled backup skipped: another backup of the database is running")
		return nil
	}
	return err
}

type verifyWorker struct {
	river.WorkerDefaults[VerifyArgs]
	s *Service
}

func (w *verifyWorker) Timeout(*river.Job[VerifyArgs]) time.Duration {
	return w.s.cfg.Timeout + time.Minute
}

func (w *verifyWorker) Work(ctx context.Context, job *river.Job[VerifyArgs]) error {
	_, err := w.s.Verify(ctx, job.Args.File)
	return err
}

type watchdogWorker struct {
	river.WorkerDefaults[WatchdogArgs]
	s *Service
}

func (w *watchdogWorker) Timeout(*river.Job[WatchdogArgs]) time.Duration {
	return 2*w.s.cfg.Timeout + time.Minute
}

func (w *watchdogWorker) Work(ctx context.Context, _ *river.Job[WatchdogArgs]) error {
	runs, err := w.s.store.LatestBackupRuns(ctx, w.s.cfg.Dir)
	if err != nil {
		return err
	}
	backupDue, verifyDue := due(runs, time.Now(), w.s.cfg.MaxAge, w.s.cfg.VerifyMaxAge)
	if backupDue {
		w.s.logger.Info("backup overdue: taking one now")
		if _, _, err := w.s.Backup(ctx); err != nil && !errors.Is(err, ErrBusy) {
			return err
		}
		if runs, err = w.s.store.LatestBackupRuns(ctx, w.s.cfg.Dir); err != nil {
			return err
		}
		_, verifyDue = due(runs, time.Now(), w.s.cfg.MaxAge, w.s.cfg.VerifyMaxAge)
	}
	if verifyDue {
		w.s.logger.Info("backup verification overdue: verifying the newest dump now", slog.Bool("after_backup", backupDue))
		_, err := w.s.Verify(ctx, "")
		return err
	}
	return nil
}

// retryFailedAfter is how long after a failed backup or verification the watchdog tries
// again. Hourly would repeat a full dump or restore every hour while the cause lasts (a
// database server without room for the scratch copy fills its disk each time); daily
// would leave the failure standing until the next scheduled run.
const retryFailedAfter = 3 * time.Hour

// due says whether the watchdog should take a backup and verify one: whenever the record
// is not healthy and another attempt may mend it. A backup: none yet, or the newest good
// one older than the readiness limit; after a failed attempt, once retryFailedAfter has
// passed. A verification: a good backup exists and no verification passed or the newest
// passed one is too old; after a failed one, as soon as a newer dump exists (a damaged
// dump stays damaged) or once retryFailedAfter has passed (the cause may have gone).
func due(r store.BackupRuns, now time.Time, maxAge, verifyMaxAge time.Duration) (backup, verify bool) {
	if r.LastBackup != nil && !r.LastBackup.OK {
		backup = now.Sub(r.LastBackup.FinishedAt) >= retryFailedAfter
	} else {
		backup = r.LastGoodBackup == nil || now.Sub(r.LastGoodBackup.FinishedAt) > maxAge
	}
	switch {
	case r.LastGoodBackup == nil:
		verify = false // nothing to verify yet
	case r.LastVerify != nil && !r.LastVerify.OK:
		verify = r.LastGoodBackup.FinishedAt.After(r.LastVerify.FinishedAt) ||
			now.Sub(r.LastVerify.FinishedAt) >= retryFailedAfter
	default:
		verify = r.LastGoodVerify == nil || now.Sub(r.LastGoodVerify.FinishedAt) > verifyMaxAge
	}
	return backup, verify
}
