package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"debate/internal/backup"
	"debate/internal/config"
	"debate/internal/store"
)

// exitBusy is the exit code when another backup is running: EX_TEMPFAIL, so that a cron
// job or script can tell "try later" from a failure.
const exitBusy = 75

const backupSummary = `Back up the database: a compressed pg_dump (custom format) with a sha256 file and a
manifest of every table's row count, written atomically into the backup folder; then
old backups are pruned (--backup-retention, always keeping --backup-keep).

  debate backup [flags]                take a backup now
  debate backup verify [FILE] [flags]  restore FILE (default: the newest) into a scratch
                                       database and check schema version and row counts
  debate backup list [flags]           list the backups in the folder
  debate backup prune [flags]          remove backups past the retention

Each run is recorded in the database (readiness and /metrics show the newest). Exit
status 75 means another backup of the database is running. --dir is short for
--backup-dir.`

func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	name := strings.TrimSpace("backup " + sub)
	maxArgs := 0
	switch sub {
	case "", "list", "prune":
	case "verify":
		maxArgs = 1
	default:
		fmt.Fprintf(stderr, "debate backup: unknown subcommand %q (want verify, list or prune; see debate backup -h)\n", sub)
		return 2
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	validate := config.BackupFlags(fs, config.LookupEnv, false)
	files, code, ok := parseFlagsArgs(fs, name, backupSummary, args, maxArgs, stderr)
	if !ok {
		return code
	}
	cfg, err := validate()
	if err == nil && (sub != "verify" || len(files) == 0) {
		err = cfg.RequireDir() // verify FILE needs no folder
	}
	if err != nil {
		printConfigError(stderr, name, err)
		return 2
	}
	if sub == "list" {
		return backupList(cfg.Backup.Dir, stdout, stderr)
	}
	if sub == "prune" {
		removed, err := backup.Prune(cfg.Backup.Dir, time.Now(), cfg.Backup.Keep, cfg.Backup.Retention)
		for _, p := range removed {
			fmt.Fprintf(stdout, "removed %s\n", p)
		}
		if err != nil {
			fmt.Fprintf(stderr, "debate %s: %v\n", name, err)
			return 1
		}
		if len(removed) == 0 {
			fmt.Fprintf(stdout, "nothing to prune (retention %s, keeping the newest %d)\n", days(cfg.Backup.Retention), cfg.Backup.Keep)
		}
		return 0
	}

	st, err := store.Open(ctx, cfg.Database.URL, store.Options{MaxConns: 4})
	if err != nil {
		printConfigError(stderr, name, &config.Error{Flag: "--database-url", Env: "DATABASE_URL", Reason: err.Error()})
		return 2
	}
	defer st.Close()
	// The command prints its outcome itself; the service's log (what the server's jobs
	// report) would say it twice. --log-level debug shows it.
	var logger *slog.Logger
	if cfg.Log.Level <= slog.LevelDebug {
		logger = newLogger(stderr, cfg.Log)
	}
	svc := backup.New(st, cfg.Backup, logger)

	if sub == "verify" {
		file := ""
		if len(files) == 1 {
			file = files[0]
		}
		res, err := svc.Verify(ctx, file)
		if err != nil {
			fmt.Fprintf(stderr, "debate %s: FAILED: %s\n", name, strings.TrimPrefix(err.Error(), "backup: "))
			return exitCode(err)
		}
		fmt.Fprintf(stdout, "verified %s: restored into a scratch database, %d tables and %d rows match the manifest, schema %s\n",
			res.Entry.Path, res.Tables, res.Rows, res.Manifest.Schema)
		fmt.Fprintf(stdout, "  %s, taken %s, checked in %s\n", bytesIEC(res.Entry.Size),
			res.Manifest.StartedAt.UTC().Format(time.RFC3339), res.Duration.Round(time.Millisecond))
		return 0
	}

	res, removed, err := svc.Backup(ctx)
	if errors.Is(err, backup.ErrBusy) {
		fmt.Fprintf(stderr, "debate %s: %s\n", name, strings.TrimPrefix(err.Error(), "backup: "))
		return exitBusy
	}
	if err != nil {
		fmt.Fprintf(stderr, "debate %s: FAILED: %s\n", name, strings.TrimPrefix(err.Error(), "backup: "))
		return exitCode(err)
	}
	m := res.Manifest
	var rows int64
	for _, n := range m.Tables {
		rows += n
	}
	fmt.Fprintf(stdout, "backup written: %s\n", res.Entry.Path)
	fmt.Fprintf(stdout, "  %s, %d tables, %d rows, schema %s, database %s (PostgreSQL %s)\n",
		bytesIEC(m.Size), len(m.Tables), rows, m.Schema, m.Database, m.ServerVersion)
	fmt.Fprintf(stdout, "  sha256 %s\n  took %s\n", m.SHA256, res.Duration.Round(time.Millisecond))
	for _, p := range removed {
		fmt.Fprintf(stdout, "removed %s\n", p)
	}
	if res.PruneError != nil {
		fmt.Fprintf(stderr, "debate %s: warning: the backup is good but pruning old ones failed: %v\n", name, res.PruneError)
	}
	return 0
}

func backupList(dir string, stdout, stderr io.Writer) int {
	entries, err := backup.List(dir)
	if err != nil {
		fmt.Fprintf(stderr, "debate backup list: %v\n", err)
		return 1
	}
	if len(entries) == 0 {
		fmt.Fprintf(stdout, "no backups in %s\n", dir)
		return 0
	}
	for _, e := range entries {
		state := ""
		if e.Future(time.Now()) {
			state = "  DATED IN THE FUTURE (a wrong clock or a renamed copy; never picked as the newest)"
		}
		if !e.Complete {
			state = "  INCOMPLETE (interrupted; never restored or verified)"
		}
		fmt.Fprintf(stdout, "%s  %10s  %s%s\n", e.Time.Format(time.RFC3339), bytesIEC(e.Size), e.Path, state)
	}
	return 0
}

// parseFlagsArgs is parseCommandFlags for commands that take file arguments as well.
func parseFlagsArgs(fs *flag.FlagSet, name, summary string, args []string, maxArgs int, stderr io.Writer) (files []string, code int, ok bool) {
	files, err := config.ParseFlagsArgs(fs, args, config.LookupEnv, maxArgs)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "usage: debate %s\n\n%s\n\nFlags (each can also be set with the variable shown after it):\n\n", name, summary)
			config.Usage(stderr, fs)
			return nil, 0, false
		}
		printConfigError(stderr, name, err)
		return nil, 2, false
	}
	return files, 0, true
}

func days(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

func bytesIEC(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
