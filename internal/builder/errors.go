package builder

import (
	"errors"
	"fmt"

	"debate/internal/sandbox"
)

// Sentinel errors for the domain cases a user can act on. A *Error wraps one of them.
var (
	ErrUnknownPackage    = errors.New("unknown package")
	ErrMirrorUnreachable = errors.New("package mirror unreachable")
	ErrTimeout           = errors.New("build time limit exceeded")
	ErrDiskFull          = errors.New("build disk space limit reached")
	ErrMemoryLimit       = errors.New("build memory limit exceeded")
	ErrProcessLimit      = errors.New("build process limit exceeded")
	ErrScriptFailed      = errors.New("recipe script failed")
	ErrToolMissing       = errors.New("build tool missing")
	ErrCanceled          = errors.New("build cancelled")
	ErrNotReproducible   = errors.New("build is not reproducible")
	ErrInvalidOptions    = errors.New("invalid build options")
	// ErrStop is returned by an AfterResolve hook to end a build early without failing.
	ErrStop = errors.New("build stopped after resolve")
)

// ErrorInfo is the user-facing description of a failed build, as events carry it.
type ErrorInfo struct {
	// Code is stable and machine-readable: unknown_package, mirror_unreachable, timeout,
	// disk_full, memory_limit, process_limit, script_failed, tool_missing, cancelled,
	// not_reproducible, invalid_options, stage_failed.
	Code    string `json:"code"`
	Stage   string `json:"stage,omitempty"`
	Message string `json:"message"`
	// Hint says what to do about it.
	Hint string `json:"hint,omitempty"`
	// LogTail holds the last lines of the failing step's output.
	LogTail []string `json:"logTail,omitempty"`
}

// Error is a failed build: the stage, what went wrong in words a user can act on, and the
// underlying cause for errors.Is/As.
type Error struct {
	Info ErrorInfo
	Err  error
}

func (e *Error) Error() string {
	s := e.Info.Message
	if e.Info.Stage != "" {
		s = e.Info.Stage + ": " + s
	}
	if e.Info.Hint != "" {
		s += " (" + e.Info.Hint + ")"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

var codes = []struct {
	err  error
	code string
	hint string
}{
	{ErrUnknownPackage, "unknown_package", "check the spelling, or remove the package from the recipe"},
	{ErrMirrorUnreachable, "mirror_unreachable", "check base.mirror and the network, then deliver again"},
	{ErrTimeout, "timeout", "remove packages or scripts to make the build smaller, or raise the build timeout"},
	{ErrDiskFull, "disk_full", "the image is larger than the build's disk limit: remove packages or raise the disk limit"},
	{ErrMemoryLimit, "memory_limit", "a step used more memory than the build may: check the recipe's scripts, or raise the memory limit"},
	{ErrProcessLimit, "process_limit", "a step started too many processes: check the recipe's scripts"},
	{ErrScriptFailed, "script_failed", "fix the script named above; its output is in the log"},
	{ErrToolMissing, "tool_missing", "install the missing tool on the build machine (make deps)"},
	{ErrCanceled, "cancelled", ""},
	{ErrNotReproducible, "not_reproducible", "report this: the same inputs must give the same image"},
	{ErrInvalidOptions, "invalid_options", ""},
}

// failure builds a classified *Error for stage from err. The sandbox's limit errors are
// translated into the build's own terms so that users read "memory limit", not "cgroup".
func failure(stage string, err error, tail []string) *Error {
	var be *Error
	if errors.As(err, &be) {
		if be.Info.Stage == "" {
			be.Info.Stage = stage
		}
		if be.Info.LogTail == nil {
			be.Info.LogTail = tail
		}
		return be
	}
	switch {
	case errors.Is(err, ErrDiskFull), errors.Is(err, ErrTimeout):
		// already in the build's terms
	case errors.Is(err, sandbox.ErrMemoryLimit):
		err = &wrapped{err, ErrMemoryLimit}
	case errors.Is(err, sandbox.ErrPidsLimit):
		err = &wrapped{err, ErrProcessLimit}
	case errors.Is(err, sandbox.ErrDiskFull):
		err = fmt.Errorf("%w: %w", ErrDiskFull, err)
	case errors.Is(err, sandbox.ErrTimeout):
		err = fmt.Errorf("%w at stage %s: %w", ErrTimeout, stage, err)
	case errors.Is(err, sandbox.ErrCanceled):
		err = fmt.Errorf("%w: %w", ErrCanceled, err)
	case errors.Is(err, sandbox.ErrUnsupported):
		err = fmt.Errorf("%w: %w", ErrToolMissing, err)
	}
	info := ErrorInfo{Code: "stage_failed", Stage: stage, Message: err.Error(), LogTail: tail}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			info.Code, info.Hint = c.code, c.hint
			break
		}
	}
	return &Error{Info: info, Err: err}
}

// wrapped adds a sentinel to an error without changing its message.
type wrapped struct {
	err      error
	sentinel error
}

func (w *wrapped) Error() string   { return w.err.Error() }
func (w *wrapped) Unwrap() []error { return []error{w.err, w.sentinel} }
