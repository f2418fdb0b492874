package debian

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadVersion is matched by the error of ParseVersion for a malformed version string.
var ErrBadVersion = errors.New("malformed Debian version")

// Version is a Debian package version, [epoch:]upstream[-revision] (Debian Policy 5.6.12).
type Version struct {
	Epoch    int
	Upstream string
	Revision string
}

// ParseVersion splits and checks a version string the way dpkg does.
func ParseVersion(s string) (Version, error) {
	var v Version
	if s == "" {
		return v, fmt.Errorf("%w: empty", ErrBadVersion)
	}
	if strings.ContainsAny(s, " \t\n") {
		return v, fmt.Errorf("%w: %q contains white space", ErrBadVersion, s)
	}
	rest := s
	if e, r, ok := strings.Cut(s, ":"); ok {
		if e == "" {
			return v, fmt.Errorf("%w: %q has an empty epoch", ErrBadVersion, s)
		}
		n := 0
		for _, c := range []byte(e) {
			if c < '0' || c > '9' {
				return v, fmt.Errorf("%w: %q has a non-numeric epoch", ErrBadVersion, s)
			}
			n = n*10 + int(c-'0')
			if n > 1<<30 {
				return v, fmt.Errorf("%w: %q has an epoch too large", ErrBadVersion, s)
			}
		}
		v.Epoch, rest = n, r
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		v.Upstream, v.Revision = rest[:i], rest[i+1:]
		if v.Revision == "" {
			return v, fmt.Errorf("%w: %q has an empty revision", ErrBadVersion, s)
		}
	} else {
		v.Upstream = rest
	}
	if v.Upstream == "" {
		return v, fmt.Errorf("%w: %q has an empty upstream version", ErrBadVersion, s)
	}
	if c := v.Upstream[0]; c < '0' || c > '9' {
		return v, fmt.Errorf("%w: %q: the upstream version must start with a digit", ErrBadVersion, s)
	}
	for _, c := range []byte(v.Upstream) {
		if !isAlnum(c) && !strings.ContainsRune(".+-~:", rune(c)) {
			return v, fmt.Errorf("%w: %q: invalid character %q in the upstream version", ErrBadVersion, s, c)
		}
	}
	for _, c := range []byte(v.Revision) {
		if !isAlnum(c) && !strings.ContainsRune(".+~", rune(c)) {
			return v, fmt.Errorf("%w: %q: invalid character %q in the revision", ErrBadVersion, s, c)
		}
	}
	return v, nil
}

// String renders the version as dpkg writes it.
func (v Version) String() string {
	var b strings.Builder
	if v.Epoch > 0 {
		fmt.Fprintf(&b, "%d:", v.Epoch)
	}
	b.WriteString(v.Upstream)
	if v.Revision != "" {
		b.WriteString("-")
		b.WriteString(v.Revision)
	}
	return b.String()
}

// Compare orders two versions as dpkg does: <0, 0 or >0.
func (v Version) Compare(o Version) int {
	if v.Epoch != o.Epoch {
		if v.Epoch < o.Epoch {
			return -1
		}
		return 1
	}
	if c := verrevcmp(v.Upstream, o.Upstream); c != 0 {
		return c
	}
	return verrevcmp(v.Revision, o.Revision)
}

// CompareVersions orders two version strings as `dpkg --compare-versions` does. A string
// that does not parse is split the same lenient way (the archive is trusted to hold valid
// versions; this keeps a comparison total rather than failing half-way through a solve).
func CompareVersions(a, b string) int {
	if a == b {
		return 0
	}
	return lenient(a).Compare(lenient(b))
}

func lenient(s string) Version {
	if v, err := ParseVersion(s); err == nil {
		return v
	}
	var v Version
	rest := s
	if e, r, ok := strings.Cut(s, ":"); ok {
		for _, c := range []byte(e) {
			if c >= '0' && c <= '9' && v.Epoch < 1<<30 {
				v.Epoch = v.Epoch*10 + int(c-'0')
			}
		}
		rest = r
	}
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		v.Upstream, v.Revision = rest[:i], rest[i+1:]
	} else {
		v.Upstream = rest
	}
	return v
}

// order is dpkg's weight of a non-digit character: '~' sorts before everything, even the
// end of the string; letters sort before other characters.
func order(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	case c != 0:
		return int(c) + 256
	}
	return 0
}

// verrevcmp is dpkg's comparison of an upstream version or a revision: alternating runs
// of non-digits (compared by order) and digits (compared numerically).
func verrevcmp(a, b string) int {
	i, j := 0, 0
	at := func(s string, k int) byte {
		if k < len(s) {
			return s[k]
		}
		return 0
	}
	for i < len(a) || j < len(b) {
		firstDiff := 0
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := order(at(a, i)), order(at(b, j))
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
