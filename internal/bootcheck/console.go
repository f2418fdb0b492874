package bootcheck

import (
	"regexp"
	"strings"
)

// MilestoneName names a stage of the boot that the console showed.
type MilestoneName string

// The milestones, in the order a healthy boot reaches them. A boot may skip some
// (a quiet kernel prints no "Linux version"); only MilestoneLogin decides success.
const (
	MilestoneFirmware   MilestoneName = "firmware"   // SeaBIOS or OVMF spoke
	MilestoneBootloader MilestoneName = "bootloader" // ISOLINUX, GRUB, shim started
	MilestoneKernel     MilestoneName = "kernel"     // "Linux version ..."
	MilestoneInitramfs  MilestoneName = "initramfs"  // "Run /init as init process" or the initramfs banner
	MilestoneSystemd    MilestoneName = "systemd"    // "Welcome to <distribution>!"
	MilestoneGetty      MilestoneName = "getty"      // getty target reached or serial getty started
	MilestoneLogin      MilestoneName = "login"      // "<host> login: " waiting for input
)

// Milestones returns every milestone name in boot order (a new slice each call).
func Milestones() []MilestoneName {
	return []MilestoneName{
		MilestoneFirmware, MilestoneBootloader, MilestoneKernel, MilestoneInitramfs,
		MilestoneSystemd, MilestoneGetty, MilestoneLogin,
	}
}

// verdict is a console finding that ends the boot as a failure before the timeout.
type verdict int

const (
	verdictNone verdict = iota
	verdictNotBootable
	verdictKernelPanic
	verdictKernelPanicEnd // the panic's closing line: the trace is complete
)

// finding is one thing a console line revealed.
type finding struct {
	milestone MilestoneName // empty when the finding is a verdict
	verdict   verdict
	line      string
}

type pattern struct {
	milestone MilestoneName
	re        *regexp.Regexp
	not       *regexp.Regexp // a line matching this never counts (nil: no exclusion)
}

func (p pattern) matches(line string) bool {
	return p.re.MatchString(line) && (p.not == nil || !p.not.MatchString(line))
}

// Patterns are matched against lines already stripped of ANSI sequences and \r.
// They are deliberately specific: a line merely mentioning a word must not count.
var serialPatterns = []pattern{
	// OVMF's boot manager; "UEFI Interactive Shell"/"EDK II" cover builds that are quieter.
	{MilestoneFirmware, regexp.MustCompile(`^BdsDxe: |^UEFI Interactive Shell|^EDK II$|SeaBIOS \(version`), nil},
	// ISOLINUX/SYSLINUX print their banner; GRUB prints its menu header or "Welcome to GRUB!";
	// "Booting `entry'" is GRUB starting a menu entry.
	{MilestoneBootloader, regexp.MustCompile(`^(ISO|SYS|PXE|EXT)LINUX \d|GNU GRUB +version|^Welcome to GRUB!|^Booting ` + "`" + `|^Loading Linux |systemd-boot`), nil},
	{MilestoneKernel, regexp.MustCompile(`Linux version \d`), nil},
	// "Run /init as init process" is the kernel handing over to the initramfs;
	// "Loading, please wait..." is Debian's initramfs-tools banner when the kernel is quiet.
	{MilestoneInitramfs, regexp.MustCompile(`Run /init as init process|^Loading, please wait\.\.\.`), nil},
	// systemd's greeting "Welcome to Debian GNU/Linux 12 (bookworm)!"; GRUB says "Welcome to GRUB!" too.
	{MilestoneSystemd, regexp.MustCompile(`^Welcome to .+!$`), regexp.MustCompile(`^Welcome to GRUB`)},
	// Either the target (all gettys started) or the serial getty itself, whichever shows first.
	// "Started getty@tty1" is not enough: that getty is on the screen, not on our console.
	{MilestoneGetty, regexp.MustCompile(`Reached target getty\.target|Reached target Login Prompts|Started serial-getty@`), nil},
}

// The firmware debug port (SeaBIOS writes its log to I/O port 0x402) only tells about the
// firmware: BIOS firmware prints nothing on the serial line.
var firmwarePatterns = []pattern{
	{MilestoneFirmware, regexp.MustCompile(`SeaBIOS \(version|^BdsDxe: `), nil},
}

var (
	// A login prompt is a line of its own: "<hostname> login: " with nothing after it
	// (the getty waits for input), or followed only by a kernel/systemd message that
	// the kernel wrote onto the prompt's line ("isolab login: [   71.2] random: ...").
	promptPartial  = regexp.MustCompile(`^\S+ login: ?$`)
	promptComplete = regexp.MustCompile(`^\S+ login: ?(?:\[.*)?$`)

	// Firmware found nothing to boot: SeaBIOS says so; OVMF falls back to its shell.
	notBootableRe = regexp.MustCompile(`No bootable device|^BdsDxe: (?:loading|starting) Boot\S* "EFI Internal Shell"|^UEFI Interactive Shell`)
	panicRe       = regexp.MustCompile(`Kernel panic - not syncing`)
	panicEndRe    = regexp.MustCompile(`---\[ end Kernel panic`)
)

// maxLine bounds a line under construction: a console that never sends a newline
// must not grow memory without limit.
const maxLine = 4096

// tailLines is how many console lines a failure report shows.
const tailLines = 20

// scanner turns a raw console byte stream into clean lines and findings. It strips
// ANSI escape sequences (even when split across writes), drops \r and other control
// bytes, treats cursor positioning as a line break (firmware menus draw that way),
// and keeps the last lines for failure reports. It is not safe for concurrent use.
type scanner struct {
	patterns []pattern
	prompts  bool // look for login prompts and fatal verdicts (the serial console)

	esc     escState
	partial []byte
	tail    []string
	seen    map[MilestoneName]bool
	panic   bool
}

type escState int

const (
	escNone    escState = iota
	escStart            // after ESC
	escCSI              // after ESC [ until a final byte
	escOSC              // after ESC ] until BEL or ESC \
	escOSCEsc           // ESC seen inside an OSC
	escCharset          // after ESC ( ) * + : one more byte
)

func newScanner(patterns []pattern, prompts bool) *scanner {
	return &scanner{patterns: patterns, prompts: prompts, seen: map[MilestoneName]bool{}}
}

// write feeds raw console bytes and returns what complete lines revealed.
func (s *scanner) write(p []byte) []finding {
	var out []finding
	for _, c := range p {
		switch s.esc {
		case escStart:
			switch c {
			case '[':
				s.esc = escCSI
			case ']':
				s.esc = escOSC
			case '(', ')', '*', '+':
				s.esc = escCharset
			default:
				s.esc = escNone // two-byte sequence such as ESC c or ESC 7
			}
			continue
		case escCSI:
			if c >= 0x40 && c <= 0x7e {
				s.esc = escNone
				// Cursor positioning starts drawing somewhere else: a new line for our purposes.
				if c == 'H' || c == 'f' {
					out = s.endLine(out)
				}
			}
			continue
		case escOSC:
			if c == 0x07 {
				s.esc = escNone
			} else if c == 0x1b {
				s.esc = escOSCEsc
			}
			continue
		case escOSCEsc:
			s.esc = escNone
			continue
		case escCharset:
			s.esc = escNone
			continue
		}
		switch {
		case c == 0x1b:
			s.esc = escStart
		case c == '\n':
			out = s.endLine(out)
		case c == '\t':
			s.partial = append(s.partial, ' ')
		case c < 0x20 || c == 0x7f:
			// \r, backspace, NUL, bell...: nothing to match on.
		default:
			s.partial = append(s.partial, c)
			if len(s.partial) >= maxLine {
				out = s.endLine(out)
			}
		}
	}
	return out
}

// endLine finishes the line under construction.
func (s *scanner) endLine(out []finding) []finding {
	if len(s.partial) == 0 {
		return out
	}
	line := strings.TrimRight(string(s.partial), " ")
	s.partial = s.partial[:0]
	if line == "" {
		return out
	}
	s.tail = append(s.tail, line)
	if len(s.tail) > tailLines {
		s.tail = s.tail[len(s.tail)-tailLines:]
	}
	out = s.match(line, out)
	if s.prompts && !s.seen[MilestoneLogin] && promptComplete.MatchString(line) {
		s.seen[MilestoneLogin] = true
		out = append(out, finding{milestone: MilestoneLogin, line: promptLine(line)})
	}
	return out
}

// match records milestones and verdicts of one line.
func (s *scanner) match(line string, out []finding) []finding {
	for _, p := range s.patterns {
		if !s.seen[p.milestone] && p.matches(line) {
			s.seen[p.milestone] = true
			out = append(out, finding{milestone: p.milestone, line: line})
		}
	}
	switch {
	case notBootableRe.MatchString(line):
		out = append(out, finding{verdict: verdictNotBootable, line: line})
	case s.prompts && panicRe.MatchString(line) && !s.panic:
		s.panic = true
		out = append(out, finding{verdict: verdictKernelPanic, line: line})
	}
	if s.prompts && s.panic && panicEndRe.MatchString(line) {
		out = append(out, finding{verdict: verdictKernelPanicEnd, line: line})
	}
	return out
}

// pendingPrompt reports whether the line under construction looks like a login
// prompt. The caller confirms it once the console has been idle for a moment: a
// getty prompt is followed by silence, while ordinary output keeps flowing.
func (s *scanner) pendingPrompt() bool {
	return s.prompts && !s.seen[MilestoneLogin] && promptPartial.Match(s.partial)
}

// idle is called when the console has been quiet for a while. It confirms a pending
// login prompt and matches milestones on the unfinished line (menus drawn without
// a newline).
func (s *scanner) idle() []finding {
	if len(s.partial) == 0 {
		return nil
	}
	line := strings.TrimRight(string(s.partial), " ")
	var out []finding
	for _, p := range s.patterns {
		if !s.seen[p.milestone] && p.matches(line) {
			s.seen[p.milestone] = true
			out = append(out, finding{milestone: p.milestone, line: line})
		}
	}
	if s.pendingPrompt() {
		s.seen[MilestoneLogin] = true
		out = append(out, finding{milestone: MilestoneLogin, line: promptLine(line)})
	}
	return out
}

// lastLines returns the last complete lines and the unfinished one, oldest first.
func (s *scanner) lastLines() []string {
	out := append([]string(nil), s.tail...)
	if p := strings.TrimSpace(string(s.partial)); p != "" {
		out = append(out, p)
	}
	if len(out) > tailLines {
		out = out[len(out)-tailLines:]
	}
	return out
}

// promptLine trims what the kernel may have written after a prompt.
func promptLine(line string) string {
	if i := strings.Index(line, " login:"); i >= 0 {
		return line[:i+len(" login:")]
	}
	return line
}
