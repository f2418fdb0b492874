package main

import (
	"context"
	"fmt"
	"io"
)

func runHash(_ context.Context, _ []string, _, stderr io.Writer) int {
	fmt.Fprintln(stderr, "not implemented yet")
	return 1
}
