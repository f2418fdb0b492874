package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"debate/internal/backup"
	"debate/internal/config"
	"debate/internal/store"
)

const restoreSummary = `Restore a backup made by 'debate backup' into the database of --database-url, then
apply this binary's migrations.

  debate restore FILE [--force] [flags]

The dump is checked against its .sha256 file first. The database must be empty (create
it with createdb) unless --force, which drops everything in its schemas first. After
restoring, every table's row count is compared with the backup's manifest. Stop the
server and workers while restoring.`

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	validate := config.BackupFlags(fs, config.LookupEnv, true)
	files, code, ok := parseFlagsArgs(fs, "restore", restoreSummary, args, 1, stderr)
	if !ok {
		return code
	}
	cfg, err := validate()
	if err == nil && len(files) == 0 {
		err = &config.Error{Reason: "which backup? give the .dump file: debate restore FILE (see debate backup list)"}
	}
	if err != nil {
		printConfigError(stderr, "restore", err)
		return 2
	}
	st, err := store.Open(ctx, cfg.Database.URL, store.Options{MaxConns: 4, Logger: newLogger(stderr, cfg.Log)})
	if err != nil {
		printConfigError(stderr, "restore", &config.Error{Flag: "--database-url", Env: "DATABASE_URL", Reason: err.Error()})
		return 2
	}
	defer st.Close()
	rctx, cancel := context.WithTimeout(ctx, cfg.Backup.Timeout)
	defer cancel()
	res, err := backup.Restore(rctx, st, files[0], backup.RestoreOptions{
		PGBin: cfg.Backup.PGBin, Force: cfg.Force, SkipChecksum: cfg.SkipChecksum,
	})
	err = backup.Stopped(ctx, rctx, cfg.Backup.Timeout, err)
	if err != nil {
		fmt.Fprintf(stderr, "debate restore: FAILED: %s\n", strings.TrimPrefix(err.Error(), "backup: "))
		if errors.Is(err, backup.ErrNoChecksum) {
			fmt.Fprintln(stderr, "  a dump made by hand (pg_dump -Fc) has none: if you know it is whole, restore it with --skip-checksum")
		}
		return exitCode(err)
	}
	if !res.ChecksumChecked && !res.Checked {
		fmt.Fprintln(stderr, "debate restore: warning: no checksum file and no manifest: nothing about the dump's content was checked")
	}
	if len(res.Replaced) > 0 {
		fmt.Fprintf(stdout, "--force: dropped what the database held (%s)\n", strings.Join(res.Replaced, ", "))
	}
	fmt.Fprintf(stdout, "restored %s into %s in %s\n", res.Entry.Path, st.DatabaseName(), res.Duration.Round(time.Millisecond))
	if res.Checked {
		var rows int64
		for _, n := range res.Manifest.Tables {
			rows += n
		}
		fmt.Fprintf(stdout, "  %d tables and %d rows match the manifest; schema %s (taken %s)\n",
			len(res.Manifest.Tables), rows, res.Manifest.Schema, res.Manifest.StartedAt.UTC().Format(time.RFC3339))
	} else {
		fmt.Fprintln(stdout, "  no manifest next to the dump: row counts not checked")
	}
	if m := res.Migrated; m != nil && (len(m.Applied) > 0 || len(m.RiverApplied) > 0) {
		fmt.Fprintf(stdout, "  migrations applied since the backup: %s (river %v)\n", strings.Join(m.Applied, ", "), m.RiverApplied)
	} else {
		fmt.Fprintln(stdout, "  schema is current")
	}
	return 0
}
