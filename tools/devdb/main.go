// Command devdb runs a command against a private development PostgreSQL cluster.
//
//	go run ./tools/devdb --dir .work/pg -- bin/debate serve --migrate-on-start ...
//
// It starts the cluster kept in --dir (creating it the first time), makes sure the
// database exists, runs the command with DATABASE_URL pointing at it, passes SIGINT and
// SIGTERM on to the command, and stops the cluster when the command ends. The data stays
// in --dir for the next run; `make clean` removes it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"debate/internal/pgtest"
)

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("devdb", flag.ContinueOnError)
	dir := fs.String("dir", ".work/pg", "folder of the development cluster")
	db := fs.String("db", "debate", "database name")
	fs.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: devdb [--dir DIR] [--db NAME] -- COMMAND [ARGS...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cluster, err := pgtest.Start(ctx, pgtest.Options{Dir: *dir})
	if err != nil {
		cancel()
		fmt.Fprintf(os.Stderr, "devdb: %v\n", err)
		return 1
	}
	defer func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "devdb: %v\n", err)
		}
	}()
	url, err := cluster.EnsureDatabase(ctx, *db)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "devdb: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "devdb: PostgreSQL in %s, DATABASE_URL=%s\n", cluster.Dir(), url)

	cmd := exec.Command(fs.Arg(0), fs.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), "DATABASE_URL="+url)
	// Its own process group: a terminal's Ctrl-C reaches us only, and we pass it on
	// exactly once (a second signal would make `debate` exit without draining).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "devdb: %v\n", err)
		return 1
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	signal.Stop(sigs)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "devdb: %v\n", err)
		return 1
	}
	return 0
}
