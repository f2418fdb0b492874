package debian

import (
	"errors"
	"math/rand/v2"
	"os/exec"
	"testing"

	"debate/internal/testenv"
)

func TestCompareVersions(t *testing.T) {
	// Cases from dpkg's own test suite (lib/dpkg/t/t-version.c) and Debian Policy 5.6.12,
	// plus the corners that trip naive implementations.
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.0-0", 0}, // an absent revision compares like "0"
		{"0:1.0", "1.0", 0},
		{"1:1.0", "2.0", 1}, // the epoch wins
		{"1.0", "1:0.1", -1},
		{"1.0-1", "1.0-2", -1},
		{"1.0-2", "1.0-10", -1}, // numeric, not lexical
		{"1.2.3", "1.2.10", -1},
		{"1.0~rc1", "1.0", -1}, // ~ sorts before the end
		{"1.0~rc1", "1.0~rc2", -1},
		{"1.0~~", "1.0~", -1},
		{"1.0~~a", "1.0~~", 1},
		{"1.0~", "1.0", -1},
		{"1.0a", "1.0", 1}, // a letter sorts after the end
		{"1.0a", "1.0+", -1},
		{"1.0+", "1.0.", -1}, // '+' (43) before '.' (46), both after letters
		{"1.0", "1.0.0", -1},
		{"1.0-0", "1.0-0.0", -1},
		{"1.001", "1.1", 0}, // leading zeros do not count
		{"1.0-1", "1.0-1~bpo1", 1},
		{"2.30-21", "2.30-21+deb11u1", -1},
		{"7.88.1-10+deb12u5", "7.88.1-10+deb12u12", -1},
		{"1:9.0.1378-2", "2:9.0.1378-2", -1},
		{"2:9.0.1378-2+deb12u1", "2:9.0.1378-2", 1},
		{"0.9", "0.10", -1},
		{"a", "b", -1}, // not valid, still ordered
		{"1.0-a", "1.0-b", -1},
		{"1.0-1ubuntu1", "1.0-1", 1},
		{"252.30-1~deb12u2", "252.30-1", -1},
		{"3.0", "3.0-1", -1},
		{"5.10", "5.9", 1},
	} {
		got := CompareVersions(tc.a, tc.b)
		if got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if back := CompareVersions(tc.b, tc.a); back != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, not antisymmetric", tc.b, tc.a, back)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Version
	}{
		{"1.0", Version{0, "1.0", ""}},
		{"2:1.0-3", Version{2, "1.0", "3"}},
		{"1.0-2-3", Version{0, "1.0-2", "3"}}, // the last hyphen starts the revision
		{"1:2:3-4", Version{1, "2:3", "4"}},   // a colon may follow the epoch
		{"0.9~rc1+dfsg-1~bpo12+1", Version{0, "0.9~rc1+dfsg", "1~bpo12+1"}},
	} {
		got, err := ParseVersion(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseVersion(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("String() = %q, want %q", got.String(), tc.in)
		}
	}
	for _, bad := range []string{"", ":1.0", "a:1.0", "1.0-", "-1", "x1.0", "1.0 beta", "1.0_2", "1:", "1.0-a_b"} {
		if _, err := ParseVersion(bad); !errors.Is(err, ErrBadVersion) {
			t.Errorf("ParseVersion(%q) = %v, want ErrBadVersion", bad, err)
		}
	}
}

// TestCompareVersionsAgainstDpkg compares random pairs of tricky versions with the real
// dpkg --compare-versions.
func TestCompareVersionsAgainstDpkg(t *testing.T) {
	testenv.Need(t, "dpkg", testenv.Tool("dpkg", "dpkg"))
	const dpkg = "dpkg"
	pool := []string{
		"1.0", "1.0-1", "1.0-1+b1", "1.0~rc1-1", "1:0.9", "1.0.0", "1.0a", "1.0+dfsg-2",
		"1.0~", "1.0~~", "2.36.1-8+deb12u1", "2.36.1-8", "0.0", "10", "9.9", "1.01", "1.1",
		"2:1.0", "1.0-1~bpo12+1", "1.0-1.1", "1.0-10", "1.0-9", "3.0.11-1~deb12u2", "1.0+",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 60 {
		a, b := pool[rng.IntN(len(pool))], pool[rng.IntN(len(pool))]
		want := 0
		if exec.Command(dpkg, "--compare-versions", a, "lt", b).Run() == nil {
			want = -1
		} else if exec.Command(dpkg, "--compare-versions", a, "gt", b).Run() == nil {
			want = 1
		}
		if got := CompareVersions(a, b); got != want {
			t.Errorf("CompareVersions(%q, %q) = %d, dpkg says %d", a, b, got, want)
		}
	}
}
