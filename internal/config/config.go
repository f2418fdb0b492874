// Package config turns command-line flags and DEBATE_* environment variables into typed,
// validated settings. A flag given on the command line wins over its variable, which wins
// over the default. Secrets may also be read from a file named by a *_FILE variable (or a
// --…-file flag), so that they never appear in a process listing.
//
// Every error names the setting it is about, as the operator would write it (the flag
// and its variable), and says what is wrong.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// ErrInvalid is wrapped by every *Error.
var ErrInvalid = errors.New("invalid setting")

// Error is a setting that could not be accepted.
type Error struct {
	Flag   string // e.g. "--rate-limit"
	Env    string // e.g. "DEBATE_RATE_LIMIT"
	Reason string
}

func (e *Error) Error() string {
	if e.Flag == "" && e.Env == "" {
		return "invalid arguments: " + e.Reason
	}
	name := e.Flag
	if e.Env != "" {
		if name != "" {
			name += " (" + e.Env + ")"
		} else {
			name = e.Env
		}
	}
	return fmt.Sprintf("invalid setting %s: %s", name, e.Reason)
}

func (e *Error) Unwrap() error { return ErrInvalid }

// Env looks a variable up; os.LookupEnv in production, a map in tests.
type Env func(name string) (string, bool)

// EnvName is the DEBATE_* variable of a flag: --rate-limit → DEBATE_RATE_LIMIT.
func EnvName(flagName string) string {
	return "DEBATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// settingError builds an *Error for a flag name (without dashes).
func settingError(flagName, format string, args ...any) *Error {
	return &Error{Flag: "--" + flagName, Env: EnvName(flagName), Reason: fmt.Sprintf(format, args...)}
}

// parse runs fs over args, then fills every flag not given on the command line from its
// DEBATE_* variable. aliases maps a flag name to extra variable names tried after the
// DEBATE_ one (e.g. database-url → DATABASE_URL).
func parse(fs *flag.FlagSet, args []string, env Env, aliases map[string][]string) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return flagParseError(err)
	}
	if fs.NArg() > 0 {
		return &Error{Reason: fmt.Sprintf("unexpected argument %q (settings are flags: --name value)", fs.Arg(0))}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var firstErr error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || firstErr != nil {
			return
		}
		names := append([]string{EnvName(f.Name)}, aliases[f.Name]...)
		for _, n := range names {
			v, ok := env(n)
			if !ok {
				continue
			}
			if err := fs.Set(f.Name, v); err != nil {
				firstErr = &Error{Flag: "--" + f.Name, Env: n, Reason: fmt.Sprintf("invalid value %q: %s", v, unwrapFlagErr(err))}
			}
			return
		}
	})
	return firstErr
}

var flagValueErr = regexp.MustCompile(`^invalid (?:boolean )?value "(.*)" for flag -([a-z0-9-]+): (.*)$`)

// flagParseError rewrites the flag package's errors to name the setting like ours do.
func flagParseError(err error) error {
	msg := err.Error()
	if m := flagValueErr.FindStringSubmatch(msg); m != nil {
		reason := m[3]
		if reason == "parse error" {
			reason = "not understood"
		}
		return settingError(m[2], "invalid value %q: %s", m[1], reason)
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		return &Error{Reason: fmt.Sprintf("unknown flag --%s (see -h)", name)}
	}
	return &Error{Reason: msg}
}

// unwrapFlagErr drops the flag package's "parse error" wrapping, keeping our reason.
func unwrapFlagErr(err error) string {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Reason
	}
	if err.Error() == "parse error" {
		return "not understood"
	}
	return err.Error()
}

// secret resolves a secret setting: its value if set, else the content of the file named
// by fileFlag (trailing newline trimmed). It is an error to set both.
func secret(flagName, value, file string) (string, error) {
	if value != "" && file != "" {
		return "", settingError(flagName+"-file", "set either --%s or --%s-file, not both", flagName, flagName)
	}
	if file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", settingError(flagName+"-file", "cannot read %s: %v", file, errors.Unwrap(err))
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", settingError(flagName+"-file", "file %s is empty", file)
	}
	return v, nil
}

// Usage writes the flags of fs with their variables, for -h.
func Usage(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		def := ""
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			def = " (default " + f.DefValue + ")"
		}
		env := "  [$" + EnvName(f.Name) + "]"
		if commandLineOnly(f.Name) {
			env = ""
		}
		fmt.Fprintf(w, "  --%s\n        %s%s%s\n", f.Name, f.Usage, def, env)
	})
}

// commandLineOnly are the flags no variable sets: destructive or unsafe choices are made
// on the command line, each time (a variable left in an environment must not make every
// later restore drop a database).
func commandLineOnly(name string) bool { return name == "force" || name == "skip-checksum" }
