package resolve

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"debate/internal/debian"
	"debate/internal/recipe"
	"debate/internal/testenv"
)

// aptFor sets up a private apt (the builder's approach: its own state, status, lists and
// sources) over exactly the index files the checker loaded, so both judge the same archive.
func aptFor(t *testing.T, l *debian.Loaded, cacheDir string) []string {
	t.Helper()
	dir := t.TempDir()
	lists := filepath.Join(dir, "state", "lists")
	for _, d := range []string{filepath.Join(lists, "partial"), filepath.Join(dir, "cache"), filepath.Join(dir, "empty"), filepath.Join(dir, "log")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	a := &debian.Archive{Suites: debian.DefaultSuites("", "", "bookworm"), CacheDir: cacheDir}
	var sources strings.Builder
	for _, s := range a.Suites {
		fmt.Fprintf(&sources, "deb [signed-by=%s] %s %s main\n", debian.DefaultKeyring, s.Mirror, s.Name)
		prefix := strings.ReplaceAll(strings.TrimPrefix(s.Mirror, "http://"), "/", "_") + "_dists_" + s.Name
		files, _ := filepath.Glob(filepath.Join(cacheDir, "*_"+s.Name, "InRelease"))
		var pin debian.Pin
		for _, p := range l.Pins {
			if p.Suite == s.Name {
				pin = p
			}
		}
		if len(files) != 1 || pin.SHA256 == "" {
			t.Fatalf("no cached InRelease for %s: %v", s.Name, files)
		}
		link(t, files[0], filepath.Join(lists, prefix+"_InRelease"))
		link(t, filepath.Join(filepath.Dir(files[0]), pin.SHA256, "main_binary-amd64_Packages"), filepath.Join(lists, prefix+"_main_binary-amd64_Packages"))
	}
	conf := debian.AptConfig(dir, "amd64", filepath.Join(dir, "cache", "archives"))
	for name, content := range map[string]string{"apt.conf": conf, "sources.list": sources.String(), "status": "", "preferences": ""} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"APT_CONFIG=" + filepath.Join(dir, "apt.conf"), "LC_ALL=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"}
}

func link(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Link(from, to); err != nil {
		data, rerr := os.ReadFile(from)
		if rerr != nil {
			t.Fatal(rerr)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPackageVerdictsMatchApt runs the package level and `apt-get install --simulate` on
// the same selections (minbase, the image's base packages and the requested ones, into an
// empty system, without recommends: what the builder asks apt for) and wants the same
// verdict, for selections that must pass and selections that must fail.
func TestPackageVerdictsMatchApt(t *testing.T) {
	testenv.Need(t, "apt-get", testenv.Tool("apt-get", "apt"))
	c := realChecker(t)
	l, _ := realIndex()
	env := aptFor(t, l, testIndexDir())
	cat := c.cat
	layerPkgs := func(ids ...string) []string {
		var out []string
		for _, id := range ids {
			ly, _ := cat.Layer(id)
			out = append(out, ly.Packages...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		pkgs []string
		ok   bool
	}{
		{"base only", nil, true},
		{"tools", []string{"vim", "git", "curl", "openssh-server", "build-essential"}, true},
		{"gnome", layerPkgs("gnome", "browser", "office"), true},
		{"xfce and i3 share lightdm and pulseaudio", layerPkgs("xfce", "i3"), true},
		{"sway", layerPkgs("sway", "fonts-extra"), true},
		{"pipewire against pulseaudio", []string{"pipewire-audio", "pulseaudio"}, false},
		{"gnome against xfce", layerPkgs("gnome", "xfce"), false},
		{"sysvinit against the base's systemd-sysv", []string{"sysvinit-core"}, false},
		{"two mail servers", []string{"postfix", "exim4-daemon-light"}, false},
		{"resolved against resolvconf", []string{"systemd-resolved", "resolvconf"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := withLayers()
			r.Packages = tc.pkgs
			if err := recipe.Validate(r); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			ours := len(c.packageFindings(r)) == 0
			t1 := time.Now()
			args := append([]string{"-s", "-q", "install"}, MinbasePackages(c.idx)...)
			args = append(args, ImageBasePackages()...)
			args = append(args, tc.pkgs...)
			cmd := exec.Command("apt-get", args...)
			cmd.Env = append(os.Environ(), env...)
			out, err := cmd.CombinedOutput()
			apt := err == nil
			t.Logf("checker %v, apt %v", t1.Sub(t0), time.Since(t1))
			if err != nil {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 100 {
					t.Fatalf("apt-get failed to run: %v\n%s", err, tail(string(out)))
				}
			}
			if apt != tc.ok || ours != tc.ok {
				t.Errorf("want installable=%v; apt says %v, the checker %v\napt: %s", tc.ok, apt, ours, tail(string(out)))
			}
		})
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}
