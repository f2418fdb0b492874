// Command debate turns recipes into reproducible, bootable ISO images and serves them.
//
// Every subcommand lives in its own file as a function of this signature; main only
// dispatches, so that each subcommand's flags and help stay next to its code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// command is one subcommand: it parses its own args and returns an exit code.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"build":     {"deliver a recipe: build its ISO", runBuild},
		"hash":      {"print the recipe hash and the canonical recipe", runHash},
		"check":     {"validate a recipe without building", runCheck},
		"layers":    {"list and search the layer catalog", runLayers},
		"boot-test": {"boot an ISO in QEMU and wait for a login prompt", runBootTest},
		"serve":     {"run the API server", runServe},
		"worker":    {"run queued builds from the database", runWorker},
		"migrate":   {"apply database migrations", runMigrate},
		"backup":    {"back up the database; verify, list and prune backups", runBackup},
		"restore":   {"restore a backup into an empty database, then migrate", runRestore},
		"version":   {"print the builder version", runVersion},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "debate: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return 2
	}
	// The first SIGINT/SIGTERM cancels the context so that builds kill their sandbox
	// and servers drain; a second one kills the process the usual way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: debate <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'debate <command> -h' for the flags of a command.")
}

// exitCode maps an error to a process exit code: 0 for nil, 130 for an interrupt, 1 otherwise.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, context.Canceled):
		return 130
	default:
		return 1
	}
}
