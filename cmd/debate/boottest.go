package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"debate/internal/bootcheck"
)

const bootTestUsage = `usage: debate boot-test ISO --firmware bios|uefi [flags]

Boots ISO headless in QEMU, reads its serial console and passes when a login
prompt appears before the timeout. Prints the time to each boot milestone.
Exit status: 0 passed, 1 failed, 2 bad usage, 130 interrupted.

Environment (flags win): DEBATE_BOOT_ACCEL, DEBATE_BOOT_TIMEOUT, DEBATE_BOOT_MEMORY.

flags:
`

// bootTestConfig is the validated configuration of one boot-test run.
type bootTestConfig struct {
	opts    bootcheck.Options
	json    bool
	logPath string
}

// parseBootTest reads flags (before or after the ISO argument) over DEBATE_BOOT_*
// defaults. Every error names the flag or variable at fault.
func parseBootTest(args []string, getenv func(string) string, stderr io.Writer) (bootTestConfig, error) {
	var cfg bootTestConfig
	def := struct {
		accel   string
		timeout time.Duration
		memory  int
	}{string(bootcheck.AccelAuto), bootcheck.DefaultTimeout, bootcheck.DefaultMemoryMiB}
	if v := getenv("DEBATE_BOOT_ACCEL"); v != "" {
		def.accel = v
	}
	if v := getenv("DEBATE_BOOT_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return cfg, fmt.Errorf("DEBATE_BOOT_TIMEOUT: %q is not a duration such as 8m or 90s", v)
		}
		def.timeout = d
	}
	if v := getenv("DEBATE_BOOT_MEMORY"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return cfg, fmt.Errorf("DEBATE_BOOT_MEMORY: %q is not a whole number of MiB", v)
		}
		def.memory = n
	}

	fs := flag.NewFlagSet("boot-test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, bootTestUsage)
		fs.PrintDefaults()
	}
	firmware := fs.String("firmware", "", "firmware to boot with: bios or uefi (required)")
	accel := fs.String("accel", def.accel, "accelerator: auto (KVM if it works, else TCG), kvm or tcg")
	timeout := fs.Duration("timeout", def.timeout, "hard limit for the whole test")
	memory := fs.Int("memory", def.memory, "guest memory in MiB")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object per line instead of text")
	fs.StringVar(&cfg.logPath, "log", "", "write the raw serial console to this file")

	// The flag package stops at the first argument that is not a flag; the ISO may
	// come first, so parse again after each positional argument.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return cfg, err
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	switch len(positional) {
	case 0:
		return cfg, errors.New("ISO argument: required: the path of the ISO image to boot")
	case 1:
	default:
		return cfg, fmt.Errorf("ISO argument: one ISO at a time, got %d arguments: %s", len(positional), strings.Join(positional, " "))
	}
	cfg.opts.ISO = positional[0]
	if *firmware == "" {
		return cfg, errors.New("--firmware: required: bios or uefi")
	}
	fw, err := bootcheck.ParseFirmware(*firmware)
	if err != nil {
		return cfg, errors.New(bootOptionError(err))
	}
	ac, err := bootcheck.ParseAccel(*accel)
	if err != nil {
		return cfg, errors.New(bootOptionError(err))
	}
	if *timeout <= 0 {
		return cfg, fmt.Errorf("--timeout: %s must be positive", *timeout)
	}
	cfg.opts.Firmware, cfg.opts.Accel, cfg.opts.Timeout, cfg.opts.MemoryMiB = fw, ac, *timeout, *memory
	return cfg, nil
}

func runBootTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseBootTest(args, os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "debate boot-test: %v\n", err)
		return 2
	}
	opts := cfg.opts
	if err := opts.Validate(); err != nil {
		fmt.Fprintf(stderr, "debate boot-test: %s\n", bootOptionError(err))
		return 2
	}
	if cfg.logPath != "" {
		f, err := os.Create(cfg.logPath)
		if err != nil {
			fmt.Fprintf(stderr, "debate boot-test: --log: %v\n", err)
			return 2
		}
		defer f.Close()
		opts.ConsoleLog = f
	}
	var rep bootReporter = &bootTextReporter{out: stdout, errw: stderr}
	handler := slog.Handler(slog.NewTextHandler(stderr, nil))
	if cfg.json {
		rep = &bootJSONReporter{enc: json.NewEncoder(stdout)}
		handler = slog.NewJSONHandler(stderr, nil)
	}
	opts.Logger = slog.New(handler)
	opts.OnMilestone = rep.milestone

	rep.start(opts)
	res, err := bootcheck.Boot(ctx, opts)
	rep.result(res, err)
	return exitCode(err)
}

// bootOptionError names an invalid option as the command line spells it.
func bootOptionError(err error) string {
	var oe *bootcheck.OptionError
	if !errors.As(err, &oe) {
		return err.Error()
	}
	if oe.Field == "iso" {
		return "ISO argument: " + oe.Reason
	}
	return "--" + oe.Field + ": " + oe.Reason
}

// bootReporter prints the progress of a boot test.
type bootReporter interface {
	start(bootcheck.Options)
	milestone(bootcheck.Milestone)
	result(bootcheck.Result, error)
}

type bootTextReporter struct {
	out, errw io.Writer
}

func (r *bootTextReporter) start(o bootcheck.Options) {
	timeout := o.Timeout
	if timeout == 0 {
		timeout = bootcheck.DefaultTimeout
	}
	fmt.Fprintf(r.out, "booting %s (firmware %s, accel %s, timeout %s)\n", o.ISO, o.Firmware, o.Accel, timeout)
}

func (r *bootTextReporter) milestone(m bootcheck.Milestone) {
	fmt.Fprintf(r.out, "  %-10s %7.1fs  [%s] %s\n", m.Name, bootSeconds(m.Elapsed), m.Accel, bootClip(m.Line, 70))
}

func (r *bootTextReporter) result(res bootcheck.Result, err error) {
	if err == nil {
		fmt.Fprintf(r.out, "PASS  login prompt %q after %.1fs (%s, %s)\n", res.LoginPrompt, bootSeconds(res.Elapsed), res.Firmware, res.Accel)
		return
	}
	fmt.Fprintf(r.errw, "FAIL  %v (after %.1fs; %s, %s)\n", err, bootSeconds(res.Total), res.Firmware, bootOrDash(string(res.Accel)))
	if res.KVMFallback != "" {
		fmt.Fprintf(r.errw, "KVM not used: %s\n", res.KVMFallback)
	}
	if len(res.Milestones) > 0 {
		names := make([]string, len(res.Milestones))
		for i, m := range res.Milestones {
			names[i] = string(m.Name)
		}
		fmt.Fprintf(r.errw, "milestones reached: %s\n", strings.Join(names, ", "))
	}
	bootWriteTail(r.errw, "last serial console lines", res.ConsoleTail)
	// SeaBIOS says why it could not boot only on its debug port.
	bootWriteTail(r.errw, "last firmware log lines", bootLastN(res.FirmwareTail, 5))
	if res.QEMUStderr != "" {
		bootWriteTail(r.errw, "QEMU standard error", bootLastN(strings.Split(res.QEMUStderr, "\n"), 10))
	}
}

func bootWriteTail(w io.Writer, title string, lines []string) {
	if len(lines) == 0 {
		fmt.Fprintf(w, "%s: (none)\n", title)
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, l := range lines {
		fmt.Fprintf(w, "  | %s\n", l)
	}
}

type bootJSONReporter struct{ enc *json.Encoder }

type bootJSONMilestone struct {
	Type    string  `json:"type"`
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Accel   string  `json:"accel"`
	Line    string  `json:"line"`
}

type bootJSONResult struct {
	Type         string   `json:"type"`
	Passed       bool     `json:"passed"`
	Seconds      float64  `json:"seconds"`
	TotalSeconds float64  `json:"total_seconds"`
	Firmware     string   `json:"firmware"`
	Accel        string   `json:"accel"`
	LoginPrompt  string   `json:"login_prompt,omitempty"`
	KVMFallback  string   `json:"kvm_fallback,omitempty"`
	Milestones   []string `json:"milestones"`
	Code         string   `json:"code,omitempty"`
	Error        string   `json:"error,omitempty"`
	ConsoleTail  []string `json:"console_tail,omitempty"`
	FirmwareTail []string `json:"firmware_tail,omitempty"`
	QEMUStderr   string   `json:"qemu_stderr,omitempty"`
}

func (r *bootJSONReporter) start(bootcheck.Options) {}

func (r *bootJSONReporter) milestone(m bootcheck.Milestone) {
	_ = r.enc.Encode(bootJSONMilestone{Type: "milestone", Name: string(m.Name), Seconds: bootSeconds(m.Elapsed), Accel: string(m.Accel), Line: m.Line})
}

func (r *bootJSONReporter) result(res bootcheck.Result, err error) {
	j := bootJSONResult{
		Type: "result", Passed: err == nil, Seconds: bootSeconds(res.Elapsed), TotalSeconds: bootSeconds(res.Total),
		Firmware: string(res.Firmware), Accel: string(res.Accel), LoginPrompt: res.LoginPrompt,
		KVMFallback: res.KVMFallback, Milestones: []string{},
	}
	for _, m := range res.Milestones {
		j.Milestones = append(j.Milestones, string(m.Name))
	}
	if err != nil {
		j.Code, j.Error = bootErrorCode(err), err.Error()
		j.ConsoleTail, j.FirmwareTail, j.QEMUStderr = res.ConsoleTail, bootLastN(res.FirmwareTail, 5), res.QEMUStderr
	}
	_ = r.enc.Encode(j)
}

// bootErrorCode is the stable machine-readable code of a boot test failure.
func bootErrorCode(err error) string {
	for _, c := range []struct {
		err  error
		code string
	}{
		{bootcheck.ErrNoLoginPrompt, "no_login_prompt"},
		{bootcheck.ErrNotBootable, "not_bootable"},
		{bootcheck.ErrKernelPanic, "kernel_panic"},
		{bootcheck.ErrQEMUExited, "qemu_exited"},
		{bootcheck.ErrKVMUnusable, "kvm_unusable"},
		{bootcheck.ErrQEMUMissing, "qemu_missing"},
		{bootcheck.ErrFirmwareMissing, "firmware_missing"},
		{context.Canceled, "canceled"},
	} {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "error"
}

// seconds rounds to a tenth: finer is noise for a boot.
func bootSeconds(d time.Duration) float64 { return math.Round(d.Seconds()*10) / 10 }

func bootClip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func bootLastN(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func bootOrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
