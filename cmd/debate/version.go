package main

import (
	"context"
	"fmt"
	"io"

	"debate/internal/builder"
)

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintln(stdout, builder.Version)
	return 0
}
