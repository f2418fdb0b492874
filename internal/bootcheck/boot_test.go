package bootcheck

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"debate/internal/testenv"
)

// These tests run the real QEMU on small ISOs built with xorriso: no QEMU is faked.
// Each finishes in seconds: the ISOs either cannot boot (the firmware says so at once),
// wait forever in ISOLINUX (the timeout path), or reboot at once (QEMU exits).

// requireTools fails under CI=true and skips elsewhere when a tool is missing.
func requireTools(t *testing.T, files ...string) {
	t.Helper()
	problems := []error{Available(), testenv.Tool("xorriso", "xorriso")}
	for _, f := range files {
		problems = append(problems, testenv.File(f, "isolinux and syslinux-common"))
	}
	testenv.Need(t, "the boot test tools", problems...)
}

const (
	isolinuxBin = "/usr/lib/ISOLINUX/isolinux.bin"
	syslinuxMod = "/usr/lib/syslinux/modules/bios/"
)

// makeISO builds an ISO from files (name → content; a content starting with "@" copies
// that host file). With isolinux set it is BIOS-bootable through ISOLINUX.
func makeISO(t *testing.T, files map[string]string, isolinux bool) string {
	t.Helper()
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	for name, content := range files {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := []byte(content)
		if src, ok := strings.CutPrefix(content, "@"); ok {
			var err error
			if data, err = os.ReadFile(src); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	iso := filepath.Join(dir, "out", "test.iso")
	if err := os.MkdirAll(filepath.Dir(iso), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"-as", "mkisofs", "-quiet", "-o", iso, "-V", "DEBATE_TEST"}
	if isolinux {
		args = append(args, "-b", "isolinux/isolinux.bin", "-c", "isolinux/boot.cat",
			"-no-emul-boot", "-boot-load-size", "4", "-boot-info-table")
	}
	args = append(args, tree)
	if out, err := exec.Command("xorriso", args...).CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, out)
	}
	return iso
}

// nonBootableISO has one file and no boot record.
func nonBootableISO(t *testing.T) string {
	return makeISO(t, map[string]string{"readme.txt": "not bootable\n"}, false)
}

// isolinuxISO boots ISOLINUX (on the serial line too) with the given configuration.
func isolinuxISO(t *testing.T, cfg string, modules ...string) string {
	files := map[string]string{
		"isolinux/isolinux.bin": "@" + isolinuxBin,
		"isolinux/ldlinux.c32":  "@" + syslinuxMod + "ldlinux.c32",
		"isolinux/isolinux.cfg": "serial 0 115200\n" + cfg,
	}
	for _, m := range modules {
		files["isolinux/"+m] = "@" + syslinuxMod + m
	}
	return makeISO(t, files, true)
}

// checkNoQEMULeft asserts that no process still uses the ISO and that the test
// process has no child left (not even a zombie).
func checkNoQEMULeft(t *testing.T, iso string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	me := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(iso)) {
			t.Errorf("process %s still runs with the ISO: %s", filepath.Base(p), bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
		stat, err := os.ReadFile(filepath.Join(p, "stat"))
		if err != nil {
			continue
		}
		// stat: pid (comm) state ppid ...; comm may contain spaces, so split after ')'.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 {
			if f := strings.Fields(string(stat[i+1:])); len(f) > 1 && f[1] == me {
				t.Errorf("child process left behind: %s", stat)
			}
		}
	}
}

// checkClean asserts that Boot left nothing in TMPDIR and wrote nothing next to the ISO.
func checkClean(t *testing.T, tmp, iso string, isoDirBefore []string) {
	t.Helper()
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("temporary files left in TMPDIR: %v", left)
	}
	if after := dirNames(t, filepath.Dir(iso)); !slices.Equal(after, isoDirBefore) {
		t.Errorf("files next to the ISO changed: %v → %v", isoDirBefore, after)
	}
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func privateTMPDIR(t *testing.T) string {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	return tmp
}

func names(ms []Milestone) []MilestoneName {
	var out []MilestoneName
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return out
}

// A medium without a boot record: the firmware runs, finds nothing, and Boot says so
// long before the timeout, leaving no QEMU and no temporary file behind.
func TestBootNotBootable(t *testing.T) {
	requireTools(t)
	for _, fw := range []Firmware{FirmwareBIOS, FirmwareUEFI} {
		t.Run(string(fw), func(t *testing.T) {
			iso := nonBootableISO(t)
			before := dirNames(t, filepath.Dir(iso))
			tmp := privateTMPDIR(t)
			// The verdict normally comes in about 5 s; the timeout only bounds a
			// machine so loaded that OVMF needs much longer to start.
			const timeout = 45 * time.Second
			var seen []Milestone
			start := time.Now()
			res, err := Boot(context.Background(), Options{
				ISO: iso, Firmware: fw, Timeout: timeout,
				OnMilestone: func(m Milestone) { seen = append(seen, m) },
			})
			took := time.Since(start)
			t.Logf("%s: %v after %s (accel %s, kvm fallback %q), milestones %v", fw, err, took.Round(time.Millisecond), res.Accel, res.KVMFallback, names(res.Milestones))
			if !errors.Is(err, ErrNotBootable) && !errors.Is(err, ErrNoLoginPrompt) {
				t.Fatalf("err = %v, want ErrNotBootable or ErrNoLoginPrompt\nconsole: %q\nfirmware: %q\nstderr: %s", err, res.ConsoleTail, res.FirmwareTail, res.QEMUStderr)
			}
			if res.Passed {
				t.Error("Passed is true")
			}
			if took > timeout+5*time.Second {
				t.Errorf("Boot took %s, timeout %s", took, timeout)
			}
			if !slices.Contains(names(res.Milestones), MilestoneFirmware) {
				t.Errorf("firmware milestone not seen: %v", names(res.Milestones))
			}
			if !slices.Equal(names(seen), names(res.Milestones)) {
				t.Errorf("OnMilestone saw %v, Result has %v", names(seen), names(res.Milestones))
			}
			if res.Accel != AccelKVM && res.Accel != AccelTCG {
				t.Errorf("Accel = %q", res.Accel)
			}
			if res.Firmware != fw {
				t.Errorf("Firmware = %q", res.Firmware)
			}
			checkNoQEMULeft(t, iso)
			checkClean(t, tmp, iso, before)
		})
	}
}

// ISOLINUX waiting forever at its prompt: only the hard timeout ends the boot, and
// QEMU's process group is killed.
func TestBootTimeout(t *testing.T) {
	requireTools(t, isolinuxBin, syslinuxMod+"ldlinux.c32")
	iso := isolinuxISO(t, "prompt 1\ntimeout 0\n")
	before := dirNames(t, filepath.Dir(iso))
	tmp := privateTMPDIR(t)
	const timeout = 10 * time.Second
	var log bytes.Buffer
	start := time.Now()
	res, err := Boot(context.Background(), Options{ISO: iso, Firmware: FirmwareBIOS, Timeout: timeout, ConsoleLog: &log})
	took := time.Since(start)
	if !errors.Is(err, ErrNoLoginPrompt) {
		t.Fatalf("err = %v, want ErrNoLoginPrompt; console %q", err, res.ConsoleTail)
	}
	if took < timeout || took > timeout+5*time.Second {
		t.Errorf("Boot took %s, timeout %s", took, timeout)
	}
	if got := names(res.Milestones); !slices.Equal(got, []MilestoneName{MilestoneFirmware, MilestoneBootloader}) {
		t.Errorf("milestones %v", got)
	}
	if !bytes.Contains(log.Bytes(), []byte("ISOLINUX 6.")) || !bytes.Contains(log.Bytes(), []byte("boot: ")) {
		t.Errorf("console log lacks the ISOLINUX banner and prompt: %q", log.String())
	}
	if len(res.ConsoleTail) == 0 || !strings.HasPrefix(res.ConsoleTail[0], "ISOLINUX") {
		t.Errorf("console tail %q", res.ConsoleTail)
	}
	checkNoQEMULeft(t, iso)
	checkClean(t, tmp, iso, before)
}

// Cancelling the context stops QEMU at once.
func TestBootCancel(t *testing.T) {
	requireTools(t, isolinuxBin, syslinuxMod+"ldlinux.c32")
	iso := isolinuxISO(t, "prompt 1\ntimeout 0\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var cancelled time.Time
	res, err := Boot(ctx, Options{
		ISO: iso, Firmware: FirmwareBIOS, Accel: AccelTCG, Timeout: time.Minute,
		OnMilestone: func(m Milestone) {
			if m.Name == MilestoneBootloader {
				cancelled = time.Now()
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled; milestones %v", err, names(res.Milestones))
	}
	if d := time.Since(cancelled); d > 3*time.Second {
		t.Errorf("Boot returned %s after the cancel", d)
	}
	checkNoQEMULeft(t, iso)
}

// A guest that reboots ends QEMU (-no-reboot): Boot reports QEMU's exit, not a timeout.
func TestBootGuestReboots(t *testing.T) {
	requireTools(t, isolinuxBin, syslinuxMod+"ldlinux.c32", syslinuxMod+"reboot.c32", syslinuxMod+"libcom32.c32")
	iso := isolinuxISO(t, "default reboot.c32\nprompt 0\ntimeout 1\n", "reboot.c32", "libcom32.c32")
	start := time.Now()
	res, err := Boot(context.Background(), Options{ISO: iso, Firmware: FirmwareBIOS, Accel: AccelTCG, Timeout: time.Minute})
	if !errors.Is(err, ErrQEMUExited) {
		t.Fatalf("err = %v, want ErrQEMUExited", err)
	}
	if !strings.Contains(err.Error(), "powered off or rebooted") {
		t.Errorf("error does not say why: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %s", d)
	}
	if !slices.Contains(names(res.Milestones), MilestoneBootloader) {
		t.Errorf("milestones %v", names(res.Milestones))
	}
	checkNoQEMULeft(t, iso)
}

// KVM that breaks mid-boot: with auto the boot restarts under TCG, with kvm it fails
// fast with ErrKVMUnusable. Either way nothing hangs. Where KVM works, the boot simply
// runs under KVM, and the test checks that.
func TestBootKVMFailure(t *testing.T) {
	requireTools(t)
	iso := nonBootableISO(t)
	t.Run("auto trusting KVM restarts under TCG", func(t *testing.T) {
		start := time.Now()
		res, err := Boot(context.Background(), Options{ISO: iso, Firmware: FirmwareUEFI, Timeout: 45 * time.Second, skipKVMProbe: true})
		t.Logf("%v after %s: accel %s, fallback %q", err, time.Since(start).Round(time.Millisecond), res.Accel, res.KVMFallback)
		if !errors.Is(err, ErrNotBootable) {
			t.Fatalf("err = %v, want ErrNotBootable", err)
		}
		switch res.Accel {
		case AccelKVM:
			if res.KVMFallback != "" {
				t.Errorf("KVM used yet fallback reason %q", res.KVMFallback)
			}
		case AccelTCG:
			if !strings.HasPrefix(res.KVMFallback, "KVM failed during the boot: ") {
				t.Errorf("fell back to TCG with reason %q", res.KVMFallback)
			}
		default:
			t.Errorf("Accel = %q", res.Accel)
		}
		checkNoQEMULeft(t, iso)
	})
	t.Run("kvm fails fast", func(t *testing.T) {
		start := time.Now()
		res, err := Boot(context.Background(), Options{ISO: iso, Firmware: FirmwareUEFI, Accel: AccelKVM, Timeout: 45 * time.Second})
		took := time.Since(start)
		t.Logf("%v after %s", err, took.Round(time.Millisecond))
		switch {
		case errors.Is(err, ErrKVMUnusable):
			if took > 20*time.Second {
				t.Errorf("KVM failure took %s to notice", took)
			}
		case errors.Is(err, ErrNotBootable):
			if res.Accel != AccelKVM {
				t.Errorf("Accel = %q, want kvm", res.Accel)
			}
		default:
			t.Fatalf("err = %v, want ErrKVMUnusable or ErrNotBootable", err)
		}
		checkNoQEMULeft(t, iso)
	})
}

func TestOptionsValidate(t *testing.T) {
	dir := t.TempDir()
	iso := filepath.Join(dir, "a.iso")
	if err := os.WriteFile(iso, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.iso")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ok := Options{ISO: iso, Firmware: FirmwareBIOS}
	cases := []struct {
		name  string
		edit  func(*Options)
		field string // "" when valid
	}{
		{"valid", func(*Options) {}, ""},
		{"valid uefi tcg", func(o *Options) {
			o.Firmware, o.Accel, o.Timeout, o.MemoryMiB = FirmwareUEFI, AccelTCG, time.Minute, 512
		}, ""},
		{"no iso", func(o *Options) { o.ISO = "" }, "iso"},
		{"missing iso", func(o *Options) { o.ISO = filepath.Join(dir, "nope.iso") }, "iso"},
		{"iso is a directory", func(o *Options) { o.ISO = dir }, "iso"},
		{"empty iso", func(o *Options) { o.ISO = empty }, "iso"},
		{"no firmware", func(o *Options) { o.Firmware = "" }, "firmware"},
		{"unknown firmware", func(o *Options) { o.Firmware = "coreboot" }, "firmware"},
		{"unknown accel", func(o *Options) { o.Accel = "hvf" }, "accel"},
		{"negative timeout", func(o *Options) { o.Timeout = -time.Second }, "timeout"},
		{"tiny timeout", func(o *Options) { o.Timeout = time.Millisecond }, "timeout"},
		{"too little memory", func(o *Options) { o.MemoryMiB = 64 }, "memory"},
		{"absurd memory", func(o *Options) { o.MemoryMiB = 1 << 20 }, "memory"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.edit(&o)
			err := o.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var oe *OptionError
			if !errors.As(err, &oe) || oe.Field != c.field || !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("err = %v, want an OptionError on %s", err, c.field)
			}
			// Boot refuses the same options without starting anything.
			if _, err := Boot(context.Background(), o); !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("Boot: err = %v", err)
			}
		})
	}
}
