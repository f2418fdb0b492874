package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"debate/internal/recipe"
	"debate/internal/resolve"
)

func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return checkMainCtx(ctx, args, os.Stdin, stdout, stderr)
}

func checkMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return checkMainCtx(context.Background(), args, stdin, stdout, stderr)
}

// checkMainCtx validates a recipe, then judges its layers and packages: exit 0 when valid
// and sustained, 1 when not (every problem listed on stdout, one per line as
// `path: message`, or one block per objection), 2 for a usage error or an unreadable file.
func checkMainCtx(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := recipeFlagSet("check", stderr)
	format := fs.String("format", "auto", "recipe syntax: auto, yaml or json (auto: JSON if it starts with '{')")
	asJSON := fs.Bool("json", false, "print the result as JSON: {\"valid\":..., \"errors\":[...], \"sustained\":..., \"objections\":[...]}")
	ic := indexFlags(fs)
	lastChange := fs.String("last-change", "", "the change you just made, `OP:NAME` (add-layer, remove-layer, add-package, remove-package): objections it caused offer to withdraw it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: debate check [--json] [--offline] [--last-change OP:NAME] [--format auto|yaml|json] FILE\n\nValidate a recipe without building it, then raise objections: layers that conflict or\nlack what they require, and (unless --offline) packages missing from the Debian index or\nnot installable together. FILE - reads standard input.\nExit status: 0 valid and sustained, 1 invalid or objected to, 2 usage error or unreadable file.\n\nflags:")
		fs.PrintDefaults()
	}
	file, code := recipeFileArg(fs, args, stderr)
	if code >= 0 {
		return code
	}
	var last *resolve.Change
	if *lastChange != "" {
		ch, err := parseChange(*lastChange)
		if err != nil {
			fmt.Fprintf(stderr, "debate check: --last-change: %v\n", err)
			return 2
		}
		last = &ch
	}
	data, f, err := readRecipeInput(file, *format, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "debate check: %v\n", err)
		return 2
	}
	r, err := recipe.Parse(data, f)
	var ve *recipe.ValidationError
	switch {
	case err == nil:
	case errors.As(err, &ve):
	default:
		fmt.Fprintf(stderr, "debate check: %v\n", err)
		return 2
	}
	var rep *resolve.Report
	if err == nil {
		rep, err = judge(ctx, r, ic, last, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "debate check: %v\n", err)
			return 2
		}
	}
	if *asJSON {
		out := checkResult{Valid: err == nil}
		if r != nil {
			out.Name, out.Hash = r.Name, r.Hash()
			out.Sustained, out.Objections, out.PackagesChecked, out.Note = rep.Sustained, rep.Objections, rep.PackagesChecked, rep.Note
		} else {
			out.Errors = ve.Errors
		}
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if werr := enc.Encode(out); werr != nil {
			fmt.Fprintf(stderr, "debate check: %v\n", werr)
			return 2
		}
		if err != nil || !rep.Sustained {
			return 1
		}
		return 0
	}
	if err != nil {
		for _, fe := range ve.Errors {
			fmt.Fprintln(stdout, fe.String())
		}
		fmt.Fprintf(stderr, "overruled: %s has %d problem%s\n", recipeInputName(file), len(ve.Errors), problemsSuffix(len(ve.Errors)))
		return 1
	}
	if !rep.Sustained {
		fmt.Fprint(stdout, rep.String())
		fmt.Fprintf(stderr, "overruled: %s has %d objection%s\n", recipeInputName(file), len(rep.Objections), problemsSuffix(len(rep.Objections)))
		return 1
	}
	fmt.Fprintf(stdout, "sustained: %s is valid\n", r.Name)
	if rep.Note != "" {
		fmt.Fprintf(stderr, "note: %s\n", rep.Note)
	}
	return 0
}

// checkResult is the --json output of check.
type checkResult struct {
	Valid           bool                `json:"valid"`
	Name            string              `json:"name,omitempty"`
	Hash            string              `json:"hash,omitempty"`
	Errors          []recipe.FieldError `json:"errors,omitempty"`
	Sustained       bool                `json:"sustained"`
	Objections      []resolve.Objection `json:"objections,omitempty"`
	PackagesChecked bool                `json:"packagesChecked"`
	Note            string              `json:"note,omitempty"`
}

func recipeFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// recipeFileArg parses flags that may come before or after the one FILE argument and
// returns FILE, or an exit code (>= 0) when the command should stop here.
func recipeFileArg(fs *flag.FlagSet, args []string, stderr io.Writer) (string, int) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", 0
			}
			return "", 2
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "debate %s: want exactly one recipe FILE (or - for standard input), got %d arguments\n", fs.Name(), len(positional))
		fs.Usage()
		return "", 2
	}
	return positional[0], -1
}

// readRecipeInput reads FILE ("-" for stdin), at most one byte more than a recipe may be
// so that Parse reports an oversized one without the whole of it being read.
func readRecipeInput(file, format string, stdin io.Reader) ([]byte, recipe.Format, error) {
	f, err := recipe.ParseFormat(format)
	if err != nil {
		return nil, 0, err
	}
	var in io.Reader = stdin
	if file != "-" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, 0, fmt.Errorf("reading the recipe: %w", err)
		}
		defer fh.Close()
		if st, err := fh.Stat(); err == nil && st.IsDir() {
			return nil, 0, fmt.Errorf("reading the recipe: %s is a directory", file)
		}
		in = fh
	}
	data, err := io.ReadAll(io.LimitReader(in, recipe.MaxRecipeBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the recipe %s: %w", recipeInputName(file), err)
	}
	return data, f, nil
}

func recipeInputName(file string) string {
	if file == "-" {
		return "standard input"
	}
	return file
}

func problemsSuffix(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
