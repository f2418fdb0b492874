package main

import (
	"context"
	"fmt"
	"io"
)

// The server subcommands are implemented in serve.go by the server work; until then they
// say so plainly instead of pretending to work.

func runServe(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "debate serve: not available in this build yet")
	return 1
}

func runMigrate(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "debate migrate: not available in this build yet")
	return 1
}
