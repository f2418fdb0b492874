// Package bootcheck boots an ISO image headless in QEMU, with BIOS or UEFI firmware,
// reads its serial console and decides whether it reached a login prompt.
//
// It times each milestone of the boot (firmware, boot loader, kernel, initramfs,
// systemd, getty, login prompt) as the console shows it. QEMU always runs under a hard
// timeout in its own process group, which is killed whatever happens: no QEMU process
// outlives Boot. With AccelAuto, KVM is used only after it proved it can run a guest,
// and a boot that KVM breaks is restarted under TCG (software emulation).
package bootcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Firmware selects what QEMU boots the ISO with.
type Firmware string

const (
	FirmwareBIOS Firmware = "bios" // SeaBIOS; the ISO boots through isolinux
	FirmwareUEFI Firmware = "uefi" // OVMF; the ISO boots through shim and GRUB
)

// ParseFirmware reads "bios" or "uefi".
func ParseFirmware(s string) (Firmware, error) {
	switch f := Firmware(s); f {
	case FirmwareBIOS, FirmwareUEFI:
		return f, nil
	}
	return "", &OptionError{Field: "firmware", Reason: fmt.Sprintf("%q is not bios or uefi", s)}
}

// Accel selects QEMU's accelerator.
type Accel string

const (
	AccelAuto Accel = "auto" // KVM if it proves to work, else TCG
	AccelKVM  Accel = "kvm"  // hardware virtualisation; fails with ErrKVMUnusable if it breaks
	AccelTCG  Accel = "tcg"  // software emulation: slow but works everywhere
)

// ParseAccel reads "auto", "kvm" or "tcg".
func ParseAccel(s string) (Accel, error) {
	switch a := Accel(s); a {
	case AccelAuto, AccelKVM, AccelTCG:
		return a, nil
	}
	return "", &OptionError{Field: "accel", Reason: fmt.Sprintf("%q is not auto, kvm or tcg", s)}
}

// Defaults and limits of Options.
const (
	// DefaultTimeout is generous: under TCG on 2 cores a small live ISO needs about a
	// minute to its login prompt, and a busy machine can double that.
	DefaultTimeout   = 8 * time.Minute
	DefaultMemoryMiB = 1024
	minMemoryMiB     = 256   // a Debian live kernel and initramfs need about that
	maxMemoryMiB     = 65536 // a typo guard, not a technical limit
)

// Options describe one boot test.
type Options struct {
	ISO       string        // path of the ISO image; opened read-only
	Firmware  Firmware      // required
	Timeout   time.Duration // hard limit for the whole test, probe included; 0 means DefaultTimeout
	Accel     Accel         // "" means AccelAuto
	MemoryMiB int           // guest memory; 0 means DefaultMemoryMiB

	// ConsoleLog, when set, receives the raw serial console bytes as they arrive.
	ConsoleLog io.Writer
	// OnMilestone, when set, is called from Boot's goroutine as each milestone is seen.
	// After a KVM failure the boot restarts under TCG and milestones are reported again,
	// with Milestone.Accel telling them apart.
	OnMilestone func(Milestone)
	// Logger receives notices (the accelerator chosen, a fallback to TCG); nil discards them.
	Logger *slog.Logger

	// skipKVMProbe makes auto trust KVM without probing it, so that tests can reach
	// the restart-under-TCG path on a machine where KVM breaks mid-boot.
	skipKVMProbe bool
}

// Milestone is one stage of the boot seen on the console.
type Milestone struct {
	Name    MilestoneName
	Elapsed time.Duration // since QEMU started (this attempt)
	Accel   Accel         // the accelerator of the attempt that saw it
	Line    string        // the console line that marked it
}

// Result describes a boot test, passed or not.
type Result struct {
	Passed   bool
	Firmware Firmware
	Accel    Accel         // accelerator of the final attempt: AccelKVM or AccelTCG
	Elapsed  time.Duration // QEMU start to login prompt (or to the end) of the final attempt
	Total    time.Duration // the whole call: KVM probe and abandoned attempts included

	Milestones  []Milestone // of the final attempt, in the order seen
	LoginPrompt string      // e.g. "isolab login:", when Passed
	// KVMFallback says why KVM was not used (or was abandoned) when Accel was auto.
	KVMFallback string

	ConsoleTail  []string // last serial console lines, ANSI stripped
	FirmwareTail []string // last lines of the firmware debug port (SeaBIOS's log)
	QEMUStderr   string   // the tail of QEMU's standard error
}

// Domain errors. Boot's errors wrap one of them; test with errors.Is.
var (
	ErrNoLoginPrompt   = errors.New("no login prompt before the timeout")
	ErrQEMUExited      = errors.New("QEMU exited before a login prompt")
	ErrNotBootable     = errors.New("the firmware found nothing bootable on the ISO")
	ErrKernelPanic     = errors.New("the kernel panicked")
	ErrKVMUnusable     = errors.New("KVM cannot run the guest on this machine")
	ErrFirmwareMissing = errors.New("UEFI firmware (OVMF) not found: install the ovmf package")
	ErrQEMUMissing     = errors.New(qemuBinary + " not found: install the qemu-system-x86 package")
	ErrInvalidOptions  = errors.New("invalid boot test options")
)

// OptionError is a bad Options field. It wraps ErrInvalidOptions.
type OptionError struct {
	Field  string // as the command line names it: iso, firmware, timeout, accel, memory
	Reason string
}

func (e *OptionError) Error() string { return e.Field + ": " + e.Reason }

// Unwrap makes errors.Is(err, ErrInvalidOptions) true.
func (e *OptionError) Unwrap() error { return ErrInvalidOptions }

// Available reports whether QEMU and the UEFI firmware are installed, naming what
// is missing and the package to install. Tests call it to fail or skip early.
func Available() error {
	var errs []error
	if _, err := exec.LookPath(qemuBinary); err != nil {
		errs = append(errs, ErrQEMUMissing)
	}
	for _, f := range []string{ovmfCode, ovmfVars} {
		if _, err := os.Stat(f); err != nil {
			errs = append(errs, fmt.Errorf("%w (%s)", ErrFirmwareMissing, f))
			break
		}
	}
	return errors.Join(errs...)
}

// Validate checks every field without booting anything. Boot validates too; this is
// for callers that want to reject bad input before they print or start anything.
func (o Options) Validate() error {
	_, err := o.withDefaults()
	return err
}

// withDefaults validates o and fills in defaults.
func (o Options) withDefaults() (Options, error) {
	if o.ISO == "" {
		return o, &OptionError{Field: "iso", Reason: "required: the path of the ISO image to boot"}
	}
	abs, err := filepath.Abs(o.ISO)
	if err != nil {
		return o, &OptionError{Field: "iso", Reason: err.Error()}
	}
	fi, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return o, &OptionError{Field: "iso", Reason: fmt.Sprintf("%s does not exist", o.ISO)}
	case err != nil:
		return o, &OptionError{Field: "iso", Reason: err.Error()}
	case !fi.Mode().IsRegular():
		return o, &OptionError{Field: "iso", Reason: fmt.Sprintf("%s is not a regular file", o.ISO)}
	case fi.Size() == 0:
		return o, &OptionError{Field: "iso", Reason: fmt.Sprintf("%s is empty", o.ISO)}
	}
	f, err := os.Open(abs)
	if err != nil {
		return o, &OptionError{Field: "iso", Reason: fmt.Sprintf("cannot be read: %v", err)}
	}
	f.Close()
	o.ISO = abs

	if o.Firmware == "" {
		return o, &OptionError{Field: "firmware", Reason: "required: bios or uefi"}
	}
	if _, err := ParseFirmware(string(o.Firmware)); err != nil {
		return o, err
	}
	if o.Accel == "" {
		o.Accel = AccelAuto
	}
	if _, err := ParseAccel(string(o.Accel)); err != nil {
		return o, err
	}
	switch {
	case o.Timeout == 0:
		o.Timeout = DefaultTimeout
	case o.Timeout < 0:
		return o, &OptionError{Field: "timeout", Reason: fmt.Sprintf("%s is negative", o.Timeout)}
	case o.Timeout < time.Second:
		return o, &OptionError{Field: "timeout", Reason: fmt.Sprintf("%s is too short to boot anything (at least 1s)", o.Timeout)}
	}
	switch {
	case o.MemoryMiB == 0:
		o.MemoryMiB = DefaultMemoryMiB
	case o.MemoryMiB < minMemoryMiB || o.MemoryMiB > maxMemoryMiB:
		return o, &OptionError{Field: "memory", Reason: fmt.Sprintf("%d MiB is outside %d–%d MiB", o.MemoryMiB, minMemoryMiB, maxMemoryMiB)}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Boot boots o.ISO and waits for a login prompt on the serial console. It returns
// a nil error only when the prompt appeared; the Result is filled in either way
// (milestones reached, the console's last lines) to explain a failure.
func Boot(ctx context.Context, o Options) (Result, error) {
	started := time.Now()
	o, err := o.withDefaults()
	if err != nil {
		return Result{}, err
	}
	res := Result{Firmware: o.Firmware}
	if _, err := exec.LookPath(qemuBinary); err != nil {
		return res, ErrQEMUMissing
	}
	if o.Firmware == FirmwareUEFI {
		for _, f := range []string{ovmfCode, ovmfVars} {
			if _, err := os.Stat(f); err != nil {
				return res, fmt.Errorf("%w (%s)", ErrFirmwareMissing, f)
			}
		}
	}
	deadline := started.Add(o.Timeout)

	// Private scratch space (the OVMF variable store): never next to the ISO.
	tmp, err := os.MkdirTemp("", "debate-bootcheck-")
	if err != nil {
		return res, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	accel := o.Accel
	if accel == AccelAuto && o.skipKVMProbe {
		accel = AccelKVM
	}
	if accel == AccelAuto {
		if why := probeKVM(ctx, tmp, deadline); why == "" {
			accel = AccelKVM
		} else {
			accel = AccelTCG
			res.KVMFallback = why
			o.Logger.Info("KVM not usable, using TCG (software emulation)", "reason", why)
		}
		if err := ctx.Err(); err != nil {
			res.Total = time.Since(started)
			return res, err
		}
	}

	for {
		out, err := attempt(ctx, o, tmp, accel, deadline)
		res.Accel = accel
		res.Milestones = out.milestones
		res.Elapsed = out.elapsed
		res.ConsoleTail, res.FirmwareTail, res.QEMUStderr = out.consoleTail, out.firmwareTail, out.stderr
		res.Total = time.Since(started)
		if errors.Is(err, errKVMBroke) {
			why := "KVM failed during the boot: " + out.kvmFailure
			if o.Accel == AccelKVM {
				return res, fmt.Errorf("%w: %s", ErrKVMUnusable, out.kvmFailure)
			}
			// Auto: the probe passed but the real guest tripped KVM. Start over under TCG.
			res.KVMFallback = why
			o.Logger.Warn("restarting the boot under TCG", "reason", why)
			accel = AccelTCG
			continue
		}
		if err != nil {
			if errors.Is(err, ErrNoLoginPrompt) {
				err = fmt.Errorf("%w (%s)", ErrNoLoginPrompt, o.Timeout)
			}
			return res, err
		}
		res.Passed = true
		res.LoginPrompt = out.login
		return res, nil
	}
}

// attempt runs one boot with one accelerator.
func attempt(ctx context.Context, o Options, tmp string, accel Accel, deadline time.Time) (runOutcome, error) {
	spec := qemuSpec{firmware: o.Firmware, accel: accel, memoryMiB: o.MemoryMiB, iso: o.ISO}
	if o.Firmware == FirmwareUEFI {
		// A fresh variable store per attempt: a broken attempt may have written boot entries.
		vars, err := newVarsFile(tmp)
		if err != nil {
			return runOutcome{accel: accel}, err
		}
		defer os.Remove(vars)
		spec.varsPath = vars
	}
	o.Logger.Debug("starting QEMU", "firmware", o.Firmware, "accel", accel, "args", spec.args())
	return run(ctx, spec, deadline, stopAtLogin, o.ConsoleLog, o.OnMilestone)
}
