package bootcheck

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// feed writes data in chunks of random sizes, as a pipe delivers it, and returns the
// findings; a final idle() stands for the silence after the last byte.
func feed(s *scanner, data []byte, seed uint64) []finding {
	r := rand.New(rand.NewPCG(seed, 1))
	var out []finding
	for len(data) > 0 {
		n := min(1+r.IntN(300), len(data))
		out = append(out, s.write(data[:n])...)
		data = data[n:]
	}
	return append(out, s.idle()...)
}

func milestoneNames(fs []finding) []MilestoneName {
	var names []MilestoneName
	for _, f := range fs {
		if f.milestone != "" {
			names = append(names, f.milestone)
		}
	}
	return names
}

func lineOf(fs []finding, m MilestoneName) string {
	for _, f := range fs {
		if f.milestone == m {
			return f.line
		}
	}
	return ""
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The transcripts in testdata are real serial consoles of a Debian bookworm live ISO
// (the iso-lab build) booted by this package under QEMU TCG.
func TestScannerRealTranscripts(t *testing.T) {
	cases := []struct {
		file                   string
		want                   []MilestoneName
		firmware, loader, init string
	}{
		{
			file: "bios-serial.raw",
			// SeaBIOS says nothing on the serial line: its milestone comes from the debug port.
			want:   []MilestoneName{MilestoneBootloader, MilestoneKernel, MilestoneInitramfs, MilestoneSystemd, MilestoneGetty, MilestoneLogin},
			loader: "ISOLINUX 6.04 20200816  Copyright (C) 1994-2015 H. Peter Anvin et al",
			init:   "Run /init as init process",
		},
		{
			file:     "uefi-serial.raw",
			want:     Milestones(),
			firmware: `BdsDxe: loading Boot0001 "UEFI QEMU DVD-ROM QM00001 " from PciRoot(0x0)/Pci(0x1F,0x2)/Sata(0x0,0xFFFF,0x0)`,
			loader:   "Welcome to GRUB!",
			init:     "Run /init as init process",
		},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data := readTestdata(t, c.file)
			for seed := range uint64(5) {
				s := newScanner(serialPatterns, true)
				got := feed(s, data, seed)
				if names := milestoneNames(got); !slices.Equal(names, c.want) {
					t.Fatalf("seed %d: milestones %v, want %v", seed, names, c.want)
				}
				for _, f := range got {
					if f.verdict != verdictNone {
						t.Errorf("seed %d: unexpected verdict %v on %q", seed, f.verdict, f.line)
					}
				}
				if c.firmware != "" && lineOf(got, MilestoneFirmware) != c.firmware {
					t.Errorf("firmware line %q", lineOf(got, MilestoneFirmware))
				}
				if l := lineOf(got, MilestoneBootloader); l != c.loader {
					t.Errorf("bootloader line %q, want %q", l, c.loader)
				}
				if l := lineOf(got, MilestoneKernel); !strings.Contains(l, "Linux version 6.1.0-") {
					t.Errorf("kernel line %q", l)
				}
				if l := lineOf(got, MilestoneInitramfs); !strings.HasSuffix(l, c.init) {
					t.Errorf("initramfs line %q", l)
				}
				// ANSI colour codes are gone; "Welcome to GRUB!" did not count as systemd.
				if l := lineOf(got, MilestoneSystemd); l != "Welcome to Debian GNU/Linux 12 (bookworm)!" {
					t.Errorf("systemd line %q", l)
				}
				if l := lineOf(got, MilestoneGetty); !strings.Contains(l, "serial-getty@ttyS0") {
					t.Errorf("getty line %q", l)
				}
				if l := lineOf(got, MilestoneLogin); l != "isolab login:" {
					t.Errorf("login line %q", l)
				}
				// In the UEFI transcript the kernel wrote three messages after the prompt,
				// the first onto the prompt's own line: "isolab login: [   83.766265] kvm: ...".
				tail := s.lastLines()
				i := slices.Index(tail, "Debian GNU/Linux 12 isolab ttyS0")
				if len(tail) != tailLines || i < 0 || i == len(tail)-1 || !strings.HasPrefix(tail[i+1], "isolab login:") {
					t.Errorf("tail: %q", tail)
				}
				for _, l := range tail {
					if strings.ContainsAny(l, "\x1b\r") {
						t.Errorf("tail line not cleaned: %q", l)
					}
				}
			}
		})
	}
}

// Without the silence that follows a prompt, a line that starts like one is not one.
func TestScannerPromptNeedsIdle(t *testing.T) {
	data := readTestdata(t, "bios-serial.raw")
	s := newScanner(serialPatterns, true)
	var got []finding
	got = append(got, s.write(data)...)
	if slices.Contains(milestoneNames(got), MilestoneLogin) {
		t.Fatal("login reported before the console went idle")
	}
	if !s.pendingPrompt() {
		t.Fatal("the prompt is not pending at the end of the transcript")
	}
	// More output on the same line: it was not a prompt after all.
	got = append(got, s.write([]byte("and more\r\n"))...)
	got = append(got, s.idle()...)
	if slices.Contains(milestoneNames(got), MilestoneLogin) {
		t.Fatal("\"isolab login: and more\" counted as a prompt")
	}
}

func TestScannerLoginPrompt(t *testing.T) {
	cases := []struct {
		name  string
		input string
		want  string // expected prompt line, "" for none
	}{
		{"bare prompt", "\r\nDebian GNU/Linux 12 box ttyS0\r\n\r\nbox login: ", "box login:"},
		{"no trailing space", "\r\nbox login:", "box login:"},
		{"kernel message written onto the prompt line", "box login: [   71.204711] random: crng init done\r\n", "box login:"},
		{"prompt after ANSI clear screen", "\x1b[H\x1b[2Jbox login: ", "box login:"},
		{"last login banner", "Last login: Mon Dec  1 10:00:00 UTC 2026 on ttyS0\r\n", ""},
		{"user typed a name", "box login: root\r\n", ""},
		{"text mentioning login", "[  OK  ] Started systemd-logind.service - User Login Management.\r\n", ""},
		{"echo of a prompt inside a line", "echo 'box login: '\r\n", ""},
		{"two words before login", "please retry login: ", ""},
		{"kernel line ending in login:", "[   12.000000] audit: type=1300 login: \r\n", ""},
		{"prompt with nothing before", " login: ", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newScanner(serialPatterns, true)
			got := s.write([]byte(c.input))
			got = append(got, s.idle()...)
			if l := lineOf(got, MilestoneLogin); l != c.want {
				t.Fatalf("prompt %q, want %q", l, c.want)
			}
		})
	}
}

// Escape sequences split anywhere across writes give the same result as whole ones.
func TestScannerSplitEscapes(t *testing.T) {
	input := []byte("\x1b[0m\x1b[30m\x1b[47mWelcome to GRUB!\r\n\x1b]0;title\x07\x1b(B" +
		"[\x1b[0;32m  OK  \x1b[0m] Reached target \x1b[0;1;39mgetty.target\x1b[0m - Login Prompts.\r\n" +
		"Welcome to \x1b[1mDebian GNU/Linux 12 (bookworm)\x1b[0m!\r\n")
	whole := newScanner(serialPatterns, true)
	want := whole.write(input)
	bytewise := newScanner(serialPatterns, true)
	var got []finding
	for i := range input {
		got = append(got, bytewise.write(input[i:i+1])...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("byte by byte %v, whole %v", got, want)
	}
	if names := milestoneNames(want); !slices.Equal(names, []MilestoneName{MilestoneBootloader, MilestoneGetty, MilestoneSystemd}) {
		t.Fatalf("milestones %v", names)
	}
	if l := lineOf(want, MilestoneGetty); l != "[  OK  ] Reached target getty.target - Login Prompts." {
		t.Fatalf("getty line %q", l)
	}
}

func TestScannerVerdicts(t *testing.T) {
	t.Run("SeaBIOS finds nothing", func(t *testing.T) {
		s := newScanner(firmwarePatterns, false)
		got := feed(s, readTestdata(t, "bios-notbootable-firmware.raw"), 1)
		if names := milestoneNames(got); !slices.Equal(names, []MilestoneName{MilestoneFirmware}) {
			t.Fatalf("milestones %v", names)
		}
		if lineOf(got, MilestoneFirmware) != "SeaBIOS (version 1.16.2-debian-1.16.2-1)" {
			t.Fatalf("firmware line %q", lineOf(got, MilestoneFirmware))
		}
		if !hasVerdict(got, verdictNotBootable) {
			t.Fatal("no not-bootable verdict")
		}
	})
	t.Run("SeaBIOS boots", func(t *testing.T) {
		got := feed(newScanner(firmwarePatterns, false), readTestdata(t, "bios-firmware.raw"), 1)
		if hasVerdict(got, verdictNotBootable) {
			t.Fatal("a successful SeaBIOS boot was judged not bootable")
		}
	})
	t.Run("OVMF falls back to its shell", func(t *testing.T) {
		got := feed(newScanner(serialPatterns, true), readTestdata(t, "uefi-notbootable-serial.raw"), 1)
		if names := milestoneNames(got); !slices.Equal(names, []MilestoneName{MilestoneFirmware}) {
			t.Fatalf("milestones %v", names)
		}
		if !hasVerdict(got, verdictNotBootable) {
			t.Fatal("no not-bootable verdict")
		}
	})
	t.Run("kernel panic", func(t *testing.T) {
		s := newScanner(serialPatterns, true)
		got := s.write([]byte("[    5.1] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\r\n" +
			"[    5.2] CPU: 0 PID: 1 Comm: swapper/0\r\n"))
		if !hasVerdict(got, verdictKernelPanic) || hasVerdict(got, verdictKernelPanicEnd) {
			t.Fatalf("findings %v", got)
		}
		got = s.write([]byte("[    5.3] ---[ end Kernel panic - not syncing: VFS: Unable to mount root fs ]---\r\n"))
		if !hasVerdict(got, verdictKernelPanicEnd) {
			t.Fatalf("findings %v", got)
		}
	})
}

func hasVerdict(fs []finding, v verdict) bool {
	return slices.ContainsFunc(fs, func(f finding) bool { return f.verdict == v })
}

// A console that never sends a newline cannot grow memory without bound.
func TestScannerLongLine(t *testing.T) {
	s := newScanner(serialPatterns, true)
	s.write([]byte(strings.Repeat("x", 10*maxLine)))
	if len(s.partial) >= maxLine {
		t.Fatalf("partial line grew to %d bytes", len(s.partial))
	}
	if len(s.lastLines()) > tailLines {
		t.Fatalf("%d tail lines", len(s.lastLines()))
	}
}
