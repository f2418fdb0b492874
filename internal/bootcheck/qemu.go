package bootcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where Debian's qemu-system-x86 and ovmf packages put their files.
const (
	qemuBinary = "qemu-system-x86_64"
	ovmfCode   = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars   = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// promptIdle is how long the console must stay quiet after a "<host> login: " partial
// line before it counts as the prompt: the getty then waits for input, while a
// line that merely starts that way keeps coming.
const promptIdle = 750 * time.Millisecond

// panicGrace lets the kernel finish printing a panic's trace before QEMU is stopped,
// so that the failure report shows it.
const panicGrace = 3 * time.Second

// qemuSpec is one QEMU invocation.
type qemuSpec struct {
	firmware  Firmware
	accel     Accel // AccelKVM or AccelTCG, never auto
	memoryMiB int
	iso       string // absolute path; "" boots no medium (the KVM probe)
	varsPath  string // private OVMF variable store, for UEFI
}

// args builds QEMU's command line. The serial console is QEMU's stdout; the firmware
// debug port (SeaBIOS logs to I/O port 0x402) goes to the inherited fd 3.
func (s qemuSpec) args() []string {
	// pc (i440FX) is what isolinux and SeaBIOS have run on for decades; q35 is the
	// machine OVMF is developed on (and the one Secure Boot needs, with SMM).
	machine := "pc"
	if s.firmware == FirmwareUEFI {
		machine = "q35"
	}
	a := []string{
		"-machine", machine,
		"-accel", string(s.accel),
		"-m", strconv.Itoa(s.memoryMiB),
		// Two vCPUs let multi-threaded TCG use both host cores; see docs/boot-test.md.
		"-smp", "2",
		"-display", "none",
		"-monitor", "none",
		"-no-reboot", // a guest reboot or panic-reboot ends QEMU instead of looping
		"-nic", "none",
		"-chardev", "stdio,id=console,signal=off",
		"-serial", "chardev:console",
		"-chardev", "file,id=fwlog,path=/dev/fd/3",
		"-device", "isa-debugcon,iobase=0x402,chardev=fwlog",
	}
	if s.firmware == FirmwareUEFI {
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+qemuPath(ovmfCode),
			"-drive", "if=pflash,format=raw,unit=1,file="+qemuPath(s.varsPath))
	} else {
		// CD first: SeaBIOS otherwise tries the floppy and disk before it.
		a = append(a, "-boot", "order=d")
	}
	if s.iso != "" {
		a = append(a, "-drive", "file="+qemuPath(s.iso)+",media=cdrom,readonly=on,format=raw")
	}
	return a
}

// qemuPath escapes a path for QEMU's option syntax, where ',' separates options.
func qemuPath(p string) string { return strings.ReplaceAll(p, ",", ",,") }

// stopRule decides when a run ends early with success.
type stopRule int

const (
	stopAtLogin    stopRule = iota // a real boot: wait for the login prompt
	stopAtFirmware                 // the KVM probe: the firmware ran, that is enough
)

// runOutcome is what one QEMU run saw.
type runOutcome struct {
	accel        Accel
	milestones   []Milestone
	login        string // the prompt line, when reached
	elapsed      time.Duration
	consoleTail  []string
	firmwareTail []string
	stderr       string
	kvmFailure   string // QEMU's KVM error line, when KVM broke
}

// kvmFailureMarkers are what QEMU prints when KVM cannot run the guest. QEMU then
// pauses the guest and hangs, so seeing one must end the run at once.
var kvmFailureMarkers = []string{
	"KVM internal error",
	"emulation failure",
	"failed to initialize kvm",
	"failed to initialize KVM",
	"Could not access KVM kernel module",
	"KVM: entry failed",
}

// errKVMBroke is returned by run when QEMU reported a KVM failure.
var errKVMBroke = errors.New("KVM failed while running the guest")

type chunk struct {
	src  int // srcSerial, srcFirmware or srcStderr
	data []byte
	eof  bool
}

const (
	srcSerial = iota
	srcFirmware
	srcStderr
)

// run starts QEMU, follows its console until the stop rule is met, a failure shows,
// QEMU exits, or the deadline passes, and always leaves no QEMU process behind.
func run(ctx context.Context, spec qemuSpec, deadline time.Time, rule stopRule, consoleLog io.Writer, onMilestone func(Milestone)) (runOutcome, error) {
	out := runOutcome{accel: spec.accel}

	serialR, serialW, err := os.Pipe()
	if err != nil {
		return out, fmt.Errorf("console pipe: %w", err)
	}
	defer serialR.Close()
	fwR, fwW, err := os.Pipe()
	if err != nil {
		serialW.Close()
		return out, fmt.Errorf("firmware log pipe: %w", err)
	}
	defer fwR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		serialW.Close()
		fwW.Close()
		return out, fmt.Errorf("stderr pipe: %w", err)
	}
	defer errR.Close()

	bin, err := exec.LookPath(qemuBinary)
	if err != nil {
		serialW.Close()
		fwW.Close()
		errW.Close()
		return out, fmt.Errorf("%w: %v", ErrQEMUMissing, err)
	}
	cmd := exec.Command(bin, spec.args()...)
	cmd.Stdin = nil // /dev/null: nobody types on the console
	cmd.Stdout = serialW
	cmd.Stderr = errW
	cmd.ExtraFiles = []*os.File{fwW} // fd 3
	cmd.Dir = os.TempDir()           // nothing QEMU might write lands next to the ISO or in our cwd
	// Own process group, so that one signal reaches QEMU and anything it spawned;
	// Pdeathsig so that QEMU dies with us if we are killed without a chance to clean up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	start := time.Now()
	err = cmd.Start()
	serialW.Close()
	fwW.Close()
	errW.Close()
	if err != nil {
		return out, fmt.Errorf("start %s: %w", bin, err)
	}
	pgid := cmd.Process.Pid

	chunks := make(chan chunk, 64)
	quit := make(chan struct{})
	defer close(quit) // releases a pump still blocked on a send once run returns
	go pump(serialR, srcSerial, chunks, quit)
	go pump(fwR, srcFirmware, chunks, quit)
	go pump(errR, srcStderr, chunks, quit)

	serial := newScanner(serialPatterns, true)
	firmware := newScanner(firmwarePatterns, false)
	var stderr tailBuffer
	seen := map[MilestoneName]bool{}
	record := func(f finding, at time.Time) {
		if f.milestone == "" || seen[f.milestone] {
			return
		}
		seen[f.milestone] = true
		m := Milestone{Name: f.milestone, Elapsed: at.Sub(start), Accel: spec.accel, Line: f.line}
		out.milestones = append(out.milestones, m)
		if f.milestone == MilestoneLogin {
			out.login = f.line
		}
		if onMilestone != nil {
			onMilestone(m)
		}
	}

	hard := time.NewTimer(time.Until(deadline))
	defer hard.Stop()
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	defer idle.Stop()
	var panicTimer <-chan time.Time
	var lastByte time.Time
	open := 3
	// The first failure seen is the one reported: a panic stays a panic even if
	// QEMU exits or the deadline passes while its trace is being collected.
	var result error
	fail := func(err error) {
		if result == nil {
			result = err
		}
	}
	done := func() bool {
		if rule == stopAtLogin && seen[MilestoneLogin] {
			return true
		}
		return rule == stopAtFirmware && seen[MilestoneFirmware]
	}

loop:
	for {
		select {
		case c := <-chunks:
			if c.eof {
				if open--; open == 0 {
					// Every writer closed its end: QEMU is gone (zombie until Wait).
					fail(ErrQEMUExited)
					break loop
				}
				continue
			}
			now := time.Now()
			var found []finding
			switch c.src {
			case srcSerial:
				lastByte = now
				if consoleLog != nil {
					// A failing log writer must not fail the boot test; the console is still scanned.
					_, _ = consoleLog.Write(c.data)
				}
				found = serial.write(c.data)
				if serial.pendingPrompt() || len(serial.partial) > 0 {
					idle.Reset(promptIdle)
				}
			case srcFirmware:
				found = firmware.write(c.data)
			case srcStderr:
				stderr.Write(c.data)
				if spec.accel == AccelKVM {
					if line := kvmFailureLine(stderr.String()); line != "" {
						out.kvmFailure = line
						fail(errKVMBroke)
						break loop
					}
				}
				continue
			}
			for _, f := range found {
				record(f, now)
				switch f.verdict {
				case verdictNotBootable:
					if rule == stopAtLogin {
						fail(fmt.Errorf("%w: %q", ErrNotBootable, f.line))
						break loop
					}
				case verdictKernelPanic:
					panicTimer = time.After(panicGrace)
					fail(fmt.Errorf("%w: %q", ErrKernelPanic, f.line))
				case verdictKernelPanicEnd:
					break loop
				}
			}
			if done() {
				break loop
			}
		case <-idle.C:
			for _, f := range serial.idle() {
				// The prompt was complete when its last byte arrived, not when we noticed the silence.
				record(f, lastByte)
			}
			if done() {
				break loop
			}
		case <-panicTimer:
			break loop
		case <-hard.C:
			fail(ErrNoLoginPrompt)
			break loop
		case <-ctx.Done():
			fail(ctx.Err())
			break loop
		}
	}
	out.elapsed = time.Since(start)
	if done() {
		result = nil
		// The boot took until the prompt's bytes arrived, not until we confirmed the silence.
		out.elapsed = out.milestones[len(out.milestones)-1].Elapsed
	}

	// Kill the whole group before reaping the leader: while the leader is unreaped
	// (a zombie at worst) its process group id cannot be reused by someone else.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	waitErr := cmd.Wait()
	// Drain what QEMU wrote before dying (its error message, the last console bytes).
	drain(chunks, &open, serial, firmware, &stderr, consoleLog)

	out.consoleTail = serial.lastLines()
	out.firmwareTail = firmware.lastLines()
	out.stderr = strings.TrimSpace(stderr.String())
	if errors.Is(result, ErrQEMUExited) && spec.accel == AccelKVM {
		// QEMU may refuse KVM at start-up and exit rather than hang.
		if line := kvmFailureLine(out.stderr); line != "" {
			out.kvmFailure = line
			result = errKVMBroke
		}
	}
	if errors.Is(result, ErrQEMUExited) {
		result = fmt.Errorf("%w (%v)%s", ErrQEMUExited, exitDescription(waitErr), stderrSuffix(out.stderr))
	}
	return out, result
}

// drain consumes the pipes until every one reached EOF, or briefly if a child of
// QEMU (there should be none) still holds one open.
func drain(chunks <-chan chunk, open *int, serial, firmware *scanner, stderr *tailBuffer, consoleLog io.Writer) {
	limit := time.After(2 * time.Second)
	for *open > 0 {
		select {
		case c := <-chunks:
			switch {
			case c.eof:
				*open--
			case c.src == srcSerial:
				if consoleLog != nil {
					_, _ = consoleLog.Write(c.data)
				}
				serial.write(c.data)
			case c.src == srcFirmware:
				firmware.write(c.data)
			default:
				stderr.Write(c.data)
			}
		case <-limit:
			return
		}
	}
}

// pump copies one pipe into the channel, then reports EOF. It gives up when quit is
// closed, so that it never blocks forever on a reader that is gone.
func pump(r io.Reader, src int, ch chan<- chunk, quit <-chan struct{}) {
	buf := make([]byte, 32*1024)
	send := func(c chunk) bool {
		select {
		case ch <- c:
			return true
		case <-quit:
			return false
		}
	}
	for {
		n, err := r.Read(buf)
		if n > 0 && !send(chunk{src: src, data: bytes.Clone(buf[:n])}) {
			return
		}
		if err != nil {
			send(chunk{src: src, eof: true})
			return
		}
	}
}

func kvmFailureLine(stderr string) string {
	for _, line := range strings.Split(stderr, "\n") {
		for _, m := range kvmFailureMarkers {
			if strings.Contains(line, m) {
				return strings.TrimSpace(line)
			}
		}
	}
	return ""
}

func exitDescription(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ProcessState.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0: the guest powered off or rebooted"
}

func stderrSuffix(stderr string) string {
	if stderr == "" {
		return ""
	}
	return ": " + stderr
}

// tailBuffer keeps the last few KiB written to it: enough for QEMU's error message,
// bounded if QEMU chatters.
type tailBuffer struct{ b []byte }

const tailBufferMax = 8 * 1024

func (t *tailBuffer) Write(p []byte) {
	t.b = append(t.b, p...)
	if len(t.b) > tailBufferMax {
		t.b = t.b[len(t.b)-tailBufferMax:]
	}
}

func (t *tailBuffer) String() string { return string(t.b) }

// copyFile copies the OVMF variable store template to a private, writable file.
func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

// newVarsFile makes a private OVMF variable store in dir.
func newVarsFile(dir string) (string, error) {
	p := filepath.Join(dir, "OVMF_VARS.fd")
	if err := copyFile(ovmfVars, p); err != nil {
		return "", fmt.Errorf("%w: copy variable store: %v", ErrFirmwareMissing, err)
	}
	return p, nil
}
