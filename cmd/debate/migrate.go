package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"debate/internal/config"
	"debate/internal/store"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	validate := config.MigrateFlags(fs, config.LookupEnv)
	if code, ok := parseCommandFlags(fs, "migrate", "Apply the embedded database migrations (River's queue tables first). A second run applies nothing.", args, stderr); !ok {
		return code
	}
	cfg, err := validate()
	if err != nil {
		printConfigError(stderr, "migrate", err)
		return 2
	}
	logger := newLogger(stderr, cfg.Log)
	st, err := store.Open(ctx, cfg.Database.URL, store.Options{MaxConns: 2, Logger: logger})
	if err != nil {
		printConfigError(stderr, "migrate", &config.Error{Flag: "--database-url", Env: "DATABASE_URL", Reason: err.Error()})
		return 2
	}
	defer st.Close()
	res, err := st.Migrate(ctx)
	if res != nil {
		for _, v := range res.RiverApplied {
			fmt.Fprintf(stdout, "applied river migration %d\n", v)
		}
		for _, id := range res.Applied {
			fmt.Fprintf(stdout, "applied %s\n", id)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "debate migrate: %v\n", err)
		return exitCode(err)
	}
	if len(res.Applied) == 0 && len(res.RiverApplied) == 0 {
		fmt.Fprintln(stdout, "schema is current; nothing to apply")
	}
	return 0
}
