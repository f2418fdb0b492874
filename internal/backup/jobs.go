package backup

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"debate/internal/config"
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
type BackupArgs struct{}

// Kind names the job in River.
func (BackupArgs) Kind() string { return "debate_backup" }

// InsertOpts puts the job in the backup queue.
func (BackupArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 3}
}

// VerifyArgs is the verification job: restore a dump (File, or the newest) into a
// scratch database and compare.
type VerifyArgs struct {
	File string `json:"file,omitempty"`
}

// Kind names the job in River.
func (VerifyArgs) Kind() string { return "debate_backup_verify" }

// InsertOpts puts the job in the backup queue.
func (VerifyArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 2}
}

// WatchdogArgs is the hourly (and at start-up) check that takes an overdue backup or
// verification: after downtime over the scheduled hour, on a fresh installation, or
// once a new dump exists after a failed verification.
type WatchdogArgs struct{}

// Kind names the job in River.
func (WatchdogArgs) Kind() string { return "debate_backup_watchdog" }

// InsertOpts puts the job in the backup queue.
func (WatchdogArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{Queue: Queue, MaxAttempts: 1}
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

// PeriodicJobs are the daily backup (at Config.At), the verification (at
// Config.VerifyAt, weekly by default) and the watchdog (hourly and at start-up).
func (s *Service) PeriodicJobs() []*river.PeriodicJob { return PeriodicJobs(s.cfg) }

// PeriodicJobs schedules the backup jobs of cfg. River runs periodic jobs only in its
// elected leader, which may be any process with a River client: a process that does not
// work the backup queue (a `debate worker` without the backup folder) must still
// schedule these, or backups stop whenever it is the leader. Their jobs go to Queue,
// which only the processes with the folder work.
func PeriodicJobs(cfg config.Backup) []*river.PeriodicJob {
	return []*river.PeriodicJob{
		river.NewPeriodicJob(cfg.At, func() (river.JobArgs, *river.InsertOpts) { return BackupArgs{}, nil },
			&river.PeriodicJobOpts{ID: "debate_backup"}),
		river.NewPeriodicJob(cfg.VerifyAt, func() (river.JobArgs, *river.InsertOpts) { return VerifyArgs{}, nil },
			&river.PeriodicJobOpts{ID: "debate_backup_verify"}),
		river.NewPeriodicJob(river.PeriodicInterval(watchdogEvery), func() (river.JobArgs, *river.InsertOpts) { return WatchdogArgs{}, nil },
			&river.PeriodicJobOpts{ID: "debate_backup_watchdog", RunOnStart: true}),
	}
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
	runs, err := w.s.store.LatestBackupRuns(ctx)
	if err != nil {
		return err
	}
	backupDue, verifyDue := due(runs, time.Now(), w.s.cfg.MaxAge, w.s.cfg.VerifyMaxAge)
	if backupDue {
		w.s.logger.Info("backup overdue: taking one now")
		if _, _, err := w.s.Backup(ctx); err != nil && !errors.Is(err, ErrBusy) {
			return err
		}
		if runs, err = w.s.store.LatestBackupRuns(ctx); err != nil {
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

// due says whether a backup and a verification are overdue: none yet, the newest success
// older than the readiness limit, or (verification) a new dump since a failed one.
func due(r store.BackupRuns, now time.Time, maxAge, verifyMaxAge time.Duration) (backup, verify bool) {
	backup = r.LastGoodBackup == nil || now.Sub(r.LastGoodBackup.FinishedAt) > maxAge
	switch {
	case r.LastGoodBackup == nil:
		verify = false // nothing to verify yet
	case r.LastGoodVerify == nil || now.Sub(r.LastGoodVerify.FinishedAt) > verifyMaxAge:
		verify = true
	case !r.LastVerify.OK && r.LastGoodBackup.FinishedAt.After(r.LastVerify.FinishedAt):
		verify = true
	}
	return backup, verify
}
