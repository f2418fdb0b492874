package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"debate/internal/recipe"
)

func runHash(_ context.Context, args []string, stdout, stderr io.Writer) int {
	return hashMain(args, os.Stdin, stdout, stderr)
}

// hashMain prints the recipe hash on the first line, then the canonical recipe that was
// hashed, indented for reading (the hash is over the compact form of the same JSON).
func hashMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := recipeFlagSet("hash", stderr)
	format := fs.String("format", "auto", "recipe syntax: auto, yaml or json (auto: JSON if it starts with '{')")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: debate hash [--format auto|yaml|json] FILE\n\nPrint the recipe hash (SHA-256 of the canonical form), then the canonical recipe.\nFILE - reads standard input. Exit status: 0 ok, 1 invalid recipe, 2 usage error.\n\nflags:")
		fs.PrintDefaults()
	}
	file, code := recipeFileArg(fs, args, stderr)
	if code >= 0 {
		return code
	}
	data, f, err := readRecipeInput(file, *format, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "debate hash: %v\n", err)
		return 2
	}
	r, err := recipe.Parse(data, f)
	if err != nil {
		fmt.Fprintf(stderr, "debate hash: %s is not a valid recipe:\n%v\n", recipeInputName(file), err)
		if errors.Is(err, recipe.ErrInvalid) {
			return 1
		}
		return 2
	}
	pretty, err := r.CanonicalIndent()
	if err != nil {
		fmt.Fprintf(stderr, "debate hash: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n%s\n", r.Hash(), pretty)
	return 0
}
