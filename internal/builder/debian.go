package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"debate/internal/debian"
	"debate/internal/recipe"
	"debate/internal/sandbox"
	"debate/internal/spelling"
)

// The Debian back end. Packages are resolved and downloaded with apt against a private
// state directory (network allowed, nothing installed), then installed by mmdebstrap from
// a local repository of exactly those files with the network cut: package maintainer
// scripts and the recipe's customisation never see a network.

// bootPackages carry the boot loaders; they are downloaded and unpacked, not installed.
var bootPackages = []string{"isolinux", "syslinux-common", "shim-signed", "grub-efi-amd64-signed"}

// Pinned is what the build's inputs were pinned to; the build key covers it.
type Pinned struct {
	// Suites maps each archive suite to the sha256 of the InRelease file that was used.
	Suites map[string]string `json:"suites"`
	// Mirrors that served them (informational: the digests are what matter).
	Mirrors []string `json:"mirrors"`
	// Tools maps each host tool package that shapes the image to its version.
	Tools   map[string]string `json:"tools"`
	Builder string            `json:"builder"`
}

// LockedPackage is one exact package file the build used.
type LockedPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	SHA256  string `json:"sha256"`
	File    string `json:"file"`
	Size    int64  `json:"size"`
	// Role is "image" (installable into the image) or "boot" (boot loader files).
	Role string `json:"role"`
}

// InstalledPackage is one package installed in the image.
type InstalledPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
}

// suites are the archive suites a recipe's base draws from.
func (p *pipeline) suites() []struct{ mirror, suite string } {
	b := p.recipe.Base
	mirror, security := b.Mirror, b.SecurityMirror
	if mirror == "" {
		mirror = p.o.Mirror
	}
	if security == "" {
		security = p.o.SecurityMirror
	}
	if b.Snapshot != "" {
		// A dated snapshot of both archives; the snapshot service keeps every date.
		mirror = "http://snapshot.debian.org/archive/debian/" + b.Snapshot
		security = "http://snapshot.debian.org/archive/debian-security/" + b.Snapshot
	}
	out := []struct{ mirror, suite string }{{mirror, b.Release}}
	if b.Updates == nil || *b.Updates {
		out = append(out, struct{ mirror, suite string }{mirror, b.Release + "-updates"}, struct{ mirror, suite string }{security, b.Release + "-security"})
	}
	return out
}

// resolve fetches the archive's signed indexes (apt verifies them against Debian's
// keyring), pins their digests, and checks that every requested package exists.
func (p *pipeline) resolve() error {
	b := p.recipe.Base
	var sources strings.Builder
	for _, s := range p.suites() {
		fmt.Fprintf(&sources, "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s %s %s\n", s.mirror, s.suite, strings.Join(b.Components, " "))
	}
	for _, d := range []string{"apt/state/lists/partial", "apt/cache", "apt/empty", "apt/log"} {
		if err := os.MkdirAll(p.path(d), 0o755); err != nil {
			return err
		}
	}
	files := map[string]string{
		"apt/apt.conf":     debian.AptConfig("/build/apt", b.Architecture, "/cache/"),
		"apt/sources.list": sources.String(),
		"apt/status":       "",
		"apt/preferences":  "",
	}
	for name, content := range files {
		if err := p.writeFile(name, []byte(content), 0o644); err != nil {
			return err
		}
	}
	got := 0
	err := p.exec(step{
		name: "apt-update", network: true, env: []string{"APT_CONFIG=/build/apt/apt.conf"},
		args: []string{"apt-get", "update", "--error-on=any"},
		onLine: func(l string) {
			if strings.HasPrefix(l, "Get:") || strings.HasPrefix(l, "Hit:") {
				got++
				p.rep.progress(float64(got)/float64(2*len(p.suites())), l)
			}
		},
	})
	if err != nil {
		var be *Error
		if errors.As(err, &be) && mentionsUnreachable(be.Info.LogTail) {
			be.Info.Code, be.Info.Hint = "mirror_unreachable", "check base.mirror and the network, then deliver again"
			be.Info.Message = "the package mirror could not be reached: " + lastError(be.Info.LogTail)
			be.Err = fmt.Errorf("%w: %w", ErrMirrorUnreachable, be.Err)
		}
		return err
	}

	// Pin: the digest of every InRelease apt verified, and the newest archive date as the
	// build's SOURCE_DATE_EPOCH (or the snapshot's date when one is named).
	lists := p.path("apt/state/lists")
	p.pinned = Pinned{Suites: map[string]string{}, Builder: Version, Tools: toolVersions()}
	for _, s := range p.suites() {
		p.pinned.Mirrors = appendUnique(p.pinned.Mirrors, s.mirror)
	}
	releases, _ := filepath.Glob(filepath.Join(lists, "*_InRelease"))
	if len(releases) != len(p.suites()) {
		return fmt.Errorf("%w: expected %d signed Release files, apt fetched %d", ErrMirrorUnreachable, len(p.suites()), len(releases))
	}
	var newest time.Time
	for _, f := range releases {
		data, err := readRegular(f)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		rel, err := parseRelease(data)
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(f), err)
		}
		p.pinned.Suites[rel.suite] = hex.EncodeToString(sum[:])
		if rel.date.After(newest) {
			newest = rel.date
		}
	}
	p.sde = newest.Unix()
	if b.Snapshot != "" {
		if t, err := time.Parse("20060102T150405Z", b.Snapshot); err == nil {
			p.sde = t.Unix()
		}
	}

	// Every requested package must exist (as a package or a virtual one) before anything
	// is downloaded.
	idx, err := p.loadIndex()
	if err != nil {
		return err
	}
	var unknown []string
	for _, name := range p.recipe.Packages {
		if !idx.exists(name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		var parts []string
		for _, u := range unknown {
			if s := idx.suggest(u); s != "" {
				parts = append(parts, fmt.Sprintf("%q (did you mean %q?)", u, s))
			} else {
				parts = append(parts, fmt.Sprintf("%q", u))
			}
		}
		return &Error{Info: ErrorInfo{
			Code: "unknown_package", Stage: StageResolve,
			Message: fmt.Sprintf("packages: %s not found in Debian %s %s (%s)", strings.Join(parts, ", "), b.Release, b.Architecture, strings.Join(b.Components, ", ")),
			Hint:    "check the spelling, or remove the package from the recipe",
		}, Err: ErrUnknownPackage}
	}
	p.buildKey = buildKey(p.recipeHash, p.pinned)
	p.rep.progress(1, fmt.Sprintf("pinned %d suites; build key %s", len(p.pinned.Suites), p.buildKey))
	return nil
}

// index is the set of names the pinned archive offers, with the paragraphs of each real
// package for writing the local repository.
type index struct {
	real    map[string][]debian.Paragraph
	virtual map[string]bool
}

func (p *pipeline) loadIndex() (*index, error) {
	idx := &index{real: map[string][]debian.Paragraph{}, virtual: map[string]bool{}}
	files, _ := filepath.Glob(p.path("apt/state/lists", "*_Packages"))
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no package index was fetched", ErrMirrorUnreachable)
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, err
		}
		err = debian.ReadParagraphs(fh, func(par debian.Paragraph) error {
			name := par.Get("Package")
			idx.real[name] = append(idx.real[name], par)
			for _, pr := range strings.Split(par.Get("Provides"), ",") {
				if n := strings.TrimSpace(strings.SplitN(strings.TrimSpace(pr), " ", 2)[0]); n != "" {
					idx.virtual[n] = true
				}
			}
			return nil
		})
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", filepath.Base(f), err)
		}
	}
	return idx, nil
}

func (i *index) exists(name string) bool { return len(i.real[name]) > 0 || i.virtual[name] }

// find returns the paragraph of an exact package version.
func (i *index) find(name, version string) (debian.Paragraph, bool) {
	for _, par := range i.real[name] {
		if par.Get("Version") == version {
			return par, true
		}
	}
	return nil, false
}

// suggest returns the closest real package name, if one is close enough to be a typo.
func (i *index) suggest(name string) string { return spelling.Nearest(name, maps.Keys(i.real)) }

// download resolves the exact package set with apt (as mmdebstrap's minbase variant would
// install it, plus the base and recipe packages), fetches the files into the cache, and
// writes a local repository holding exactly those versions.
func (p *pipeline) download() error {
	idx, err := p.loadIndex()
	if err != nil {
		return err
	}
	// minbase = Essential:yes + Priority:required + apt.
	imageSet := map[string]bool{"apt": true}
	for name, pars := range idx.real {
		for _, par := range pars {
			if par.Get("Essential") == "yes" || par.Get("Priority") == "required" {
				imageSet[name] = true
			}
		}
	}
	for _, n := range p.includes() {
		imageSet[n] = true
	}
	var lock []LockedPackage
	for _, set := range []struct {
		role  string
		names []string
	}{{"image", keys(imageSet)}, {"boot", p.bootPackageNames()}} {
		if len(set.names) == 0 {
			continue
		}
		pkgs, err := p.simulate(idx, set.names)
		if err != nil {
			return err
		}
		for _, lp := range pkgs {
			lp.Role = set.role
			lock = append(lock, lp)
		}
	}
	lock = dedupeLock(lock)
	p.lock = lock

	// Fetch what the cache lacks; apt verifies every file against the pinned index.
	var missing []string
	var missingBytes int64
	for _, lp := range lock {
		if !cachedOK(filepath.Join(p.debs, lp.File), lp.Size) {
			missing = append(missing, lp.Name+"="+lp.Version)
			missingBytes += lp.Size
		}
	}
	if len(missing) > 0 {
		p.rep.progress(0, fmt.Sprintf("downloading %d of %d packages (%s)", len(missing), len(lock), sandbox.FormatBytes(missingBytes)))
		done := 0
		args := append([]string{"apt-get", "-q", "download"}, missing...)
		// "apt-get download" fetches exactly the named versions, without dependency
		// resolution (that happened above), into the working directory: the cache.
		args = append([]string{"sh", "-c", `cd /cache && exec "$@"`, "sh"}, args...)
		err := p.exec(step{
			name: "apt-download", network: true, env: []string{"APT_CONFIG=/build/apt/apt.conf"}, args: args,
			onLine: func(l string) {
				if strings.HasPrefix(l, "Get:") {
					done++
					p.rep.progress(float64(done)/float64(len(missing)), l)
				}
			},
		})
		if err != nil {
			var be *Error
			if errors.As(err, &be) && mentionsUnreachable(be.Info.LogTail) {
				be.Info.Code, be.Info.Hint = "mirror_unreachable", "check base.mirror and the network, then deliver again"
				be.Err = fmt.Errorf("%w: %w", ErrMirrorUnreachable, be.Err)
			}
			return err
		}
	} else {
		p.rep.progress(1, fmt.Sprintf("all %d packages already in the cache", len(lock)))
	}
	// Verify every file, cached or fresh, against the pinned index before use.
	for i, lp := range lock {
		if err := verifyFile(filepath.Join(p.debs, lp.File), lp.SHA256); err != nil {
			_ = os.Remove(filepath.Join(p.debs, lp.File))
			return fmt.Errorf("package %s %s: %w", lp.Name, lp.Version, err)
		}
		if i%16 == 0 {
			p.rep.progress(float64(i+1)/float64(len(lock)), "verifying package files")
		}
	}
	p.downloaded = missingBytes
	return p.writeLocalRepo(idx)
}

// includes are the packages mmdebstrap installs on top of minbase.
func (p *pipeline) includes() []string {
	set := map[string]bool{}
	for _, n := range recipe.BasePackages(p.recipe.Base.Distribution) {
		set[n] = true
	}
	for _, n := range p.recipe.Packages {
		set[n] = true
	}
	for _, n := range p.recipe.ImpliedPackages() {
		set[n] = true
	}
	return keys(set)
}

func (p *pipeline) bootPackageNames() []string {
	var out []string
	for _, m := range p.recipe.Boot {
		switch m {
		case "bios":
			out = append(out, "isolinux", "syslinux-common")
		case "uefi":
			out = append(out, "shim-signed", "grub-efi-amd64-signed")
		}
	}
	sort.Strings(out)
	return out
}

var instLine = regexp.MustCompile(`^Inst (\S+) (?:\[\S+\] )?\((\S+) .*\[(\S+)\]\)`)

// simulate asks apt which exact versions installing names into an empty system takes.
func (p *pipeline) simulate(idx *index, names []string) ([]LockedPackage, error) {
	var out []LockedPackage
	var resolveErr []string
	args := append([]string{"apt-get", "-s", "-q", "install"}, names...)
	err := p.exec(step{
		name: "apt-resolve", env: []string{"APT_CONFIG=/build/apt/apt.conf"}, args: args,
		onLine: func(l string) {
			if m := instLine.FindStringSubmatch(l); m != nil {
				out = append(out, LockedPackage{Name: m[1], Version: m[2], Arch: m[3]})
			} else if strings.HasPrefix(l, " ") || strings.HasPrefix(l, "E:") {
				resolveErr = append(resolveErr, strings.TrimSpace(l))
			}
		},
	})
	if err != nil {
		var be *Error
		if errors.As(err, &be) {
			be.Info.Code = "unsatisfiable"
			be.Info.Message = "the requested packages cannot be installed together: " + strings.Join(resolveErr, "; ")
			be.Info.Hint = "remove or replace one of the conflicting packages named above"
		}
		return nil, err
	}
	for i, lp := range out {
		par, ok := idx.find(lp.Name, lp.Version)
		if !ok {
			return nil, fmt.Errorf("apt chose %s %s, which is not in the pinned index", lp.Name, lp.Version)
		}
		size, _ := strconv.ParseInt(par.Get("Size"), 10, 64)
		out[i].SHA256 = par.Get("SHA256")
		out[i].Size = size
		// apt names downloaded files name_version_arch.deb, with an epoch's ':' escaped.
		out[i].File = fmt.Sprintf("%s_%s_%s.deb", lp.Name, strings.ReplaceAll(lp.Version, ":", "%3a"), lp.Arch)
	}
	return out, nil
}

// writeLocalRepo writes the Packages index and Release file of the local repository that
// the offline bootstrap installs from. The pool is the cache itself, bound in read-only.
func (p *pipeline) writeLocalRepo(idx *index) error {
	var pkgs strings.Builder
	for _, lp := range p.lock {
		if lp.Role != "image" {
			continue
		}
		par, _ := idx.find(lp.Name, lp.Version)
		// The archive's paragraph is carried over whole: its Priority field decides what
		// minbase installs, which the .deb's own control file may say differently.
		if _, err := par.With("Filename", "pool/"+lp.File).WriteTo(&pkgs); err != nil {
			return err
		}
	}
	dir := "repo/dists/" + p.recipe.Base.Release + "/main/binary-" + p.recipe.Base.Architecture
	if err := p.writeFile(dir+"/Packages", []byte(pkgs.String()), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(p.path("repo/pool"), 0o755); err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(pkgs.String()))
	release := fmt.Sprintf("Suite: %[1]s\nCodename: %[1]s\nArchitectures: %[2]s\nComponents: main\nDate: %[3]s\nSHA256:\n %[4]x %[5]d main/binary-%[2]s/Packages\n",
		p.recipe.Base.Release, p.recipe.Base.Architecture, time.Unix(p.sde, 0).UTC().Format(time.RFC1123Z), sum, pkgs.Len())
	return p.writeFile("repo/dists/"+p.recipe.Base.Release+"/Release", []byte(release), 0o644)
}

// release is what the pipeline needs of a Release file.
type release struct {
	suite string
	date  time.Time
}

func parseRelease(data []byte) (release, error) {
	var r release
	// InRelease is clear-signed: the fields sit between the armor header and signature.
	text := string(data)
	if i := strings.Index(text, "\n\n"); strings.HasPrefix(text, "-----BEGIN PGP SIGNED MESSAGE-----") && i >= 0 {
		text = text[i+2:]
	}
	if i := strings.Index(text, "\n-----BEGIN PGP SIGNATURE-----"); i >= 0 {
		text = text[:i+1]
	}
	err := debian.ReadParagraphs(strings.NewReader(text), func(par debian.Paragraph) error {
		if r.suite != "" {
			return nil
		}
		r.suite = par.Get("Suite")
		if r.suite == "" {
			r.suite = par.Get("Codename")
		}
		d, err := time.Parse(time.RFC1123, par.Get("Date"))
		if err != nil {
			d, err = time.Parse(time.RFC1123Z, par.Get("Date"))
		}
		if err != nil {
			return fmt.Errorf("release date %q: %w", par.Get("Date"), err)
		}
		r.date = d
		return nil
	})
	if err == nil && r.suite == "" {
		err = errors.New("release file names no suite")
	}
	return r, err
}

func mentionsUnreachable(lines []string) bool {
	for _, l := range lines {
		for _, s := range []string{"Could not resolve", "Failed to fetch", "Unable to connect", "Connection failed", "Could not connect", "Temporary failure resolving", "404  Not Found"} {
			if strings.Contains(l, s) {
				return true
			}
		}
	}
	return false
}

func lastError(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "E:") || strings.HasPrefix(lines[i], "W:") || strings.HasPrefix(lines[i], "Err:") {
			return strings.TrimSpace(lines[i])
		}
	}
	if len(lines) > 0 {
		return lines[len(lines)-1]
	}
	return "no output"
}

func cachedOK(path string, size int64) bool {
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

func verifyFile(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return fmt.Errorf("sha256 %s does not match the archive's %s", got, want)
	}
	return nil
}

func readRegular(path string) ([]byte, error) {
	f, err := openNoFollow(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

func dedupeLock(in []LockedPackage) []LockedPackage {
	seen := map[string]int{}
	var out []LockedPackage
	for _, lp := range in {
		k := lp.Name + "=" + lp.Version
		if i, ok := seen[k]; ok {
			if out[i].Role != lp.Role {
				out[i].Role = "image" // an image package that also feeds the boot loader
			}
			continue
		}
		seen[k] = len(out)
		out = append(out, lp)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Name < out[j].Name || (out[i].Name == out[j].Name && out[i].Version < out[j].Version)
	})
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
