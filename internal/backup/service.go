package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"debate/internal/store"
)

// Stopped says why err happened when it came from a context that ended: the time limit
// (ctx's deadline, set from --backup-timeout) or an interruption (parent cancelled, as
// by SIGINT or SIGTERM). Other errors are returned as they are.
func Stopped(parent, ctx context.Context, timeout time.Duration, err error) error {
	switch {
	case err == nil:
		return nil
	case parent.Err() != nil:
		return explain("interrupted", err)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return explain(fmt.Sprintf("took longer than --backup-timeout (%s)", timeout), err)
	}
	return err
}

// explain puts why in front of err's message, keeping err in the chain.
func explain(why string, err error) error {
	return &wrapped{err: err, msg: "backup: " + why + ": " + strings.TrimPrefix(err.Error(), "backup: ")}
}

// runHistory is the least time the record of backup runs is kept.
const runHistory = 90 * 24 * time.Hour

// Backup takes a backup, records the outcome in the database and prunes old backups.
// A refusal because another backup is running (ErrBusy) is not recorded: that other
// backup's outcome is the one that counts.
func (s *Service) Backup(parent context.Context) (*DumpResult, []string, error) {
	ctx, cancel := context.WithTimeout(parent, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	res, err := Dump(ctx, s.store, s.cfg.Dir, s.cfg.PGBin)
	err = Stopped(parent, ctx, s.cfg.Timeout, err)
	if errors.Is(err, ErrBusy) {
		return nil, nil, err
	}
	run := store.BackupRun{Kind: store.RunBackup, Dir: s.cfg.Dir, OK: err == nil, StartedAt: start, Host: s.host}
	if err != nil {
		run.Message = err.Error()
		s.logger.Error("backup failed", slog.String("dir", s.cfg.Dir), slog.String("error", err.Error()))
	} else {
		run.File, run.Size = res.Entry.Name(), res.Manifest.Size
		run.Message = fmt.Sprintf("%d tables, %d rows", len(res.Manifest.Tables), sumRows(res.Manifest.Tables))
		s.logger.Info("backup taken", slog.String("file", res.Entry.Path), slog.Int64("bytes", res.Manifest.Size),
			slog.Duration("duration", res.Duration), slog.Int("tables", len(res.Manifest.Tables)))
	}
	s.record(run)
	if err != nil {
		return nil, nil, err
	}
	removed, perr := Prune(s.cfg.Dir, time.Now(), s.cfg.Keep, s.cfg.Retention)
	for _, p := range removed {
		s.logger.Info("old backup file removed", slog.String("file", p))
	}
	if perr != nil {
		// The backup itself is good; a failed prune shows up in the logs and, if it
		// persists, as a full disk.
		s.logger.Warn("pruning old backups failed", slog.String("error", perr.Error()))
		res.PruneError = perr
	}
	// The record of runs is kept as long as the dumps, and at least runHistory: a
	// failure weeks ago still explains a gap in the dumps.
	if n, err := s.store.PruneBackupRuns(ctx, time.Now().Add(-max(s.cfg.Retention, runHistory))); err != nil {
		s.logger.Warn("pruning old backup records failed", slog.String("error", err.Error()))
	} else if n > 0 {
		s.logger.Info("old backup records removed", slog.Int64("rows", n))
	}
	return res, removed, nil
}

// Verify verifies the dump at path (empty: the newest) by restoring it into a scratch
// database, and records the outcome in the database.
func (s *Service) Verify(parent context.Context, path string) (*VerifyResult, error) {
	ctx, cancel := context.WithTimeout(parent, s.cfg.Timeout)
	defer cancel()
	start := time.Now()
	res, err := Verify(ctx, s.store, s.cfg.Dir, path, s.cfg.PGBin)
	err = Stopped(parent, ctx, s.cfg.Timeout, err)
	run := store.BackupRun{Kind: store.RunVerify, Dir: s.cfg.Dir, OK: err == nil, StartedAt: start, Host: s.host}
	if res != nil && res.Entry.Path != "" {
		run.File, run.Size = res.Entry.Name(), res.Entry.Size
		run.Dir = filepath.Dir(res.Entry.Path) // a file given by path may lie elsewhere
	} else if path != "" {
		// Not even found: judged with the folder the path names, not the server's.
		if abs, aerr := filepath.Abs(path); aerr == nil {
			run.Dir = filepath.Dir(abs)
		}
	}
	if err != nil {
		run.Message = err.Error()
		s.logger.Error("backup verification failed", slog.String("file", run.File), slog.String("error", err.Error()))
	} else {
		run.Message = fmt.Sprintf("restored %d tables, %d rows; schema %s", res.Tables, res.Rows, res.Manifest.Schema)
		s.logger.Info("backup verified", slog.String("file", res.Entry.Path), slog.Duration("duration", res.Duration),
			slog.Int("tables", res.Tables), slog.Int64("rows", res.Rows))
	}
	s.record(run)
	return res, err
}

// Prune removes old backups per the retention settings.
func (s *Service) Prune(now time.Time) ([]string, error) {
	return Prune(s.cfg.Dir, now, s.cfg.Keep, s.cfg.Retention)
}

// record stores a run. On a context of its own: a run that timed out is exactly the
// one that must be recorded.
func (s *Service) record(run store.BackupRun) {
	run.FinishedAt = time.Now()
	run.Duration = run.FinishedAt.Sub(run.StartedAt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.store.RecordBackupRun(ctx, run); err != nil {
		s.logger.Error("could not record the backup run", slog.String("kind", run.Kind), slog.String("error", err.Error()))
	}
}

func sumRows(m map[string]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}

// Health judges the recorded runs: healthy when the newest backup attempt succeeded and
// is younger than MaxAge, and the newest verification passed and is younger than
// VerifyMaxAge. detail says what is wrong (or what is right), for readiness.
func (s *Service) Health(ctx context.Context) (ok bool, detail string) {
	runs, err := s.store.LatestBackupRuns(ctx, s.cfg.Dir)
	if err != nil {
		return false, "cannot read the backup record: " + firstLine(err)
	}
	return judge(runs, time.Now(), s.cfg.MaxAge, s.cfg.VerifyMaxAge)
}

func judge(r store.BackupRuns, now time.Time, maxAge, verifyMaxAge time.Duration) (bool, string) {
	var problems []string
	ago := func(t time.Time) string {
		return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Minute))
	}
	switch {
	case r.LastBackup == nil:
		problems = append(problems, "no backup taken yet (run: debate backup)")
	case !r.LastBackup.OK:
		problems = append(problems, fmt.Sprintf("the last backup, at %s, failed: %s", ago(r.LastBackup.FinishedAt), firstLine(errors.New(r.LastBackup.Message))))
	case now.Sub(r.LastGoodBackup.FinishedAt) > maxAge:
		problems = append(problems, fmt.Sprintf("the newest backup is from %s, older than %s", ago(r.LastGoodBackup.FinishedAt), maxAge))
	}
	switch {
	case r.LastVerify == nil:
		problems = append(problems, "no backup verified yet (run: debate backup verify)")
	case !r.LastVerify.OK:
		problems = append(problems, fmt.Sprintf("the last verification, of %s at %s, failed: %s", r.LastVerify.File, ago(r.LastVerify.FinishedAt), firstLine(errors.New(r.LastVerify.Message))))
	case now.Sub(r.LastGoodVerify.FinishedAt) > verifyMaxAge:
		problems = append(problems, fmt.Sprintf("the newest passed verification is from %s, older than %s", ago(r.LastGoodVerify.FinishedAt), verifyMaxAge))
	}
	if len(problems) > 0 {
		return false, strings.Join(problems, "; ")
	}
	return true, fmt.Sprintf("last backup %s at %s (%d bytes); verified %s at %s",
		r.LastGoodBackup.File, ago(r.LastGoodBackup.FinishedAt), r.LastGoodBackup.Size,
		r.LastGoodVerify.File, ago(r.LastGoodVerify.FinishedAt))
}

func firstLine(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// WriteMetrics writes the backup gauges in the Prometheus text format, for /metrics.
// Timestamps are Unix seconds; a gauge whose run never happened is left out.
func (s *Service) WriteMetrics(ctx context.Context, w io.Writer) error {
	runs, err := s.store.LatestBackupRuns(ctx, s.cfg.Dir)
	if err != nil {
		return err
	}
	ok, _ := judge(runs, time.Now(), s.cfg.MaxAge, s.cfg.VerifyMaxAge)
	entries, _ := List(s.cfg.Dir)
	var files int
	var bytes int64
	for _, e := range entries {
		if e.Complete {
			files++
			bytes += e.Size
		}
	}
	return writeMetrics(w, runs, ok, files, bytes)
}

func writeMetrics(w io.Writer, r store.BackupRuns, healthy bool, files int, bytes int64) error {
	var b strings.Builder
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	b01 := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	gauge("debate_backup_healthy", "1 when backups and their verification are recent and passing (the readiness check).", b01(healthy))
	if r.LastBackup != nil {
		gauge("debate_backup_last_ok", "1 when the newest backup attempt succeeded.", b01(r.LastBackup.OK))
	}
	if g := r.LastGoodBackup; g != nil {
		gauge("debate_backup_last_success_timestamp_seconds", "When the newest successful backup finished.", float64(g.FinishedAt.Unix()))
		gauge("debate_backup_last_size_bytes", "Size of the newest successful dump.", float64(g.Size))
		gauge("debate_backup_last_duration_seconds", "How long the newest successful backup took.", g.Duration.Seconds())
	}
	if r.LastVerify != nil {
		gauge("debate_backup_verify_last_ok", "1 when the newest verification (a restore into a scratch database) passed.", b01(r.LastVerify.OK))
	}
	if g := r.LastGoodVerify; g != nil {
		gauge("debate_backup_verify_last_success_timestamp_seconds", "When the newest passed verification finished.", float64(g.FinishedAt.Unix()))
		gauge("debate_backup_verify_last_duration_seconds", "How long the newest passed verification took.", g.Duration.Seconds())
	}
	gauge("debate_backup_files", "Complete backups in the backup folder.", float64(files))
	gauge("debate_backup_files_bytes", "Total size of the dumps in the backup folder.", float64(bytes))
	_, err := io.WriteString(w, b.String())
	return err
}
