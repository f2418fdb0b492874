package debian

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ulikunitz/xz"
)

// Sentinel errors of fetching an archive's indexes.
var (
	// ErrMirrorUnreachable: the mirror could not be reached and nothing usable is cached.
	ErrMirrorUnreachable = errors.New("package mirror unreachable")
	// ErrBadSignature: InRelease is not signed by a key of the keyring.
	ErrBadSignature = errors.New("release file signature not valid")
	// ErrBadIndex: a file does not match the digest the signed Release gives, or the
	// Release is expired, for another suite, or does not list the index.
	ErrBadIndex = errors.New("archive index not valid")
	// ErrToolMissing: gpgv is not installed.
	ErrToolMissing = errors.New("gpgv not found")
)

// DefaultKeyring is Debian's archive keyring (package debian-archive-keyring).
const DefaultKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// Suite is one archive suite on one mirror.
type Suite struct {
	Mirror string // e.g. http://deb.debian.org/debian
	Name   string // e.g. bookworm, bookworm-updates, bookworm-security
}

// DefaultSuites are Debian bookworm, its updates and its security suite on deb.debian.org.
func DefaultSuites(mirror, security, release string) []Suite {
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	if security == "" {
		security = "http://deb.debian.org/debian-security"
	}
	return []Suite{{mirror, release}, {mirror, release + "-updates"}, {security, release + "-security"}}
}

// Archive fetches the Packages indexes of some suites, verifies them (the InRelease
// signature with gpgv against a keyring, each file's size and SHA-256 against the signed
// Release) and keeps them in a cache directory keyed by the InRelease digest, so that
// they are downloaded again only when the mirror's Release changes.
type Archive struct {
	Suites     []Suite
	Components []string // default [main]
	Arch       string   // default amd64
	// CacheDir holds the verified indexes (required).
	CacheDir string
	// Keyring for gpgv (default DefaultKeyring).
	Keyring string
	// MaxAge lets a cached Release younger than this be used without asking the mirror
	// whether it changed (0: always ask).
	MaxAge time.Duration
	Client *http.Client
	Logger *slog.Logger
	// Now is the clock (default time.Now), for Valid-Until.
	Now func() time.Time
}

// Pin is what one suite's index was pinned to.
type Pin struct {
	Suite  string    `json:"suite"`
	Mirror string    `json:"mirror"`
	SHA256 string    `json:"inReleaseSha256"`
	Date   time.Time `json:"date"`
	// Cached is true when the mirror was not asked (fresh enough) or could not be reached.
	Cached bool `json:"cached"`
}

// Loaded is the result of Load.
type Loaded struct {
	Index *Index
	Pins  []Pin
	// Warnings say what was degraded (a stale cache used because the mirror was down).
	Warnings []string
}

func (a *Archive) defaults() error {
	if a.CacheDir == "" {
		return errors.New("archive: no cache directory")
	}
	if len(a.Suites) == 0 {
		return errors.New("archive: no suites")
	}
	if len(a.Components) == 0 {
		a.Components = []string{"main"}
	}
	if a.Arch == "" {
		a.Arch = "amd64"
	}
	if a.Keyring == "" {
		a.Keyring = DefaultKeyring
	}
	if a.Client == nil {
		a.Client = &http.Client{Timeout: 2 * time.Minute}
	}
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	if a.Now == nil {
		a.Now = time.Now
	}
	return nil
}

// Load brings every suite's indexes up to date in the cache and builds the Index.
func (a *Archive) Load(ctx context.Context) (*Loaded, error) {
	if err := a.defaults(); err != nil {
		return nil, err
	}
	out := &Loaded{}
	var parts []IndexPart
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, s := range a.Suites {
		pin, paths, warn, err := a.suite(ctx, s)
		if err != nil {
			return nil, err
		}
		if warn != "" {
			out.Warnings = append(out.Warnings, warn)
		}
		out.Pins = append(out.Pins, pin)
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				return nil, fmt.Errorf("archive: %w", err)
			}
			files = append(files, f)
			parts = append(parts, IndexPart{Suite: s.Name, R: f})
		}
	}
	idx, err := BuildIndex(a.Arch, parts...)
	if err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	out.Index = idx
	return out, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// suiteDir is the cache folder of one suite on one mirror.
func (a *Archive) suiteDir(s Suite) string {
	u := strings.TrimPrefix(strings.TrimPrefix(s.Mirror, "http://"), "https://")
	return filepath.Join(a.CacheDir, unsafeChars.ReplaceAllString(strings.Trim(u, "/")+"_"+s.Name, "_"))
}

// suite returns the pin and the cached uncompressed Packages files of one suite.
func (a *Archive) suite(ctx context.Context, s Suite) (Pin, []string, string, error) {
	dir := a.suiteDir(s)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Pin{}, nil, "", fmt.Errorf("archive: %w", err)
	}
	current := filepath.Join(dir, "InRelease")
	if st, err := os.Stat(current); err == nil && a.MaxAge > 0 && a.Now().Sub(st.ModTime()) < a.MaxAge {
		if pin, paths, err := a.fromCache(s, current); err == nil {
			pin.Cached = true
			return pin, paths, "", nil
		}
	}
	data, err := a.get(ctx, strings.TrimRight(s.Mirror, "/")+"/dists/"+s.Name+"/InRelease")
	if err != nil {
		// Degrade to the last verified copy, saying so.
		if pin, paths, cerr := a.fromCache(s, current); cerr == nil {
			pin.Cached = true
			return pin, paths, fmt.Sprintf("%s %s: mirror unreachable (%v); using the index cached from %s", s.Mirror, s.Name, err, pin.Date.Format(time.RFC3339)), nil
		}
		return Pin{}, nil, "", fmt.Errorf("%w: %s %s: %w", ErrMirrorUnreachable, s.Mirror, s.Name, err)
	}
	rel, err := a.verifyRelease(ctx, s, data)
	if err != nil {
		return Pin{}, nil, "", err
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	pin := Pin{Suite: s.Name, Mirror: s.Mirror, SHA256: digest, Date: rel.date}
	paths, err := a.indexes(ctx, s, rel, digest)
	if err != nil {
		return Pin{}, nil, "", err
	}
	// The new InRelease becomes current only once its indexes are all in place.
	if err := writeAtomic(current, data); err != nil {
		return Pin{}, nil, "", fmt.Errorf("archive: %w", err)
	}
	a.prune(dir, digest)
	return pin, paths, "", nil
}

// fromCache returns the pin and files of the cached current InRelease, if complete.
func (a *Archive) fromCache(s Suite, current string) (Pin, []string, error) {
	data, err := os.ReadFile(current)
	if err != nil {
		return Pin{}, nil, err
	}
	sum := sha256.Sum256(data)
	digest := hex.EncodeToString(sum[:])
	var paths []string
	for _, comp := range a.Components {
		p := filepath.Join(a.suiteDir(s), digest, comp+"_binary-"+a.Arch+"_Packages")
		if _, err := os.Stat(p); err != nil {
			return Pin{}, nil, err
		}
		paths = append(paths, p)
	}
	rel, err := parseReleaseText(clearsignedBody(data))
	if err != nil {
		return Pin{}, nil, err
	}
	return Pin{Suite: s.Name, Mirror: s.Mirror, SHA256: digest, Date: rel.date}, paths, nil
}

// indexes makes sure every component's Packages file of the Release digest is cached.
func (a *Archive) indexes(ctx context.Context, s Suite, rel releaseInfo, digest string) ([]string, error) {
	dir := filepath.Join(a.suiteDir(s), digest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("archive: %w", err)
	}
	var paths []string
	for _, comp := range a.Components {
		dest := filepath.Join(dir, comp+"_binary-"+a.Arch+"_Packages")
		paths = append(paths, dest)
		if _, err := os.Stat(dest); err == nil {
			continue
		}
		base := comp + "/binary-" + a.Arch + "/Packages"
		plain, hasPlain := rel.sha256[base]
		var got []byte
		var lastErr error
		fetched := false
		for _, ext := range []string{".gz", ".xz"} {
			want, ok := rel.sha256[base+ext]
			if !ok {
				continue
			}
			url := strings.TrimRight(s.Mirror, "/") + "/dists/" + s.Name + "/" + base + ext
			if rel.byHash {
				url = strings.TrimRight(s.Mirror, "/") + "/dists/" + s.Name + "/" + comp + "/binary-" + a.Arch + "/by-hash/SHA256/" + want.sum
			}
			data, err := a.get(ctx, url)
			if err != nil {
				lastErr = err
				continue
			}
			if err := checkDigest(data, want); err != nil {
				return nil, fmt.Errorf("%w: %s %s: %w", ErrBadIndex, s.Name, base+ext, err)
			}
			got, err = decompress(ext, data)
			if err != nil {
				return nil, fmt.Errorf("%w: %s %s: %w", ErrBadIndex, s.Name, base+ext, err)
			}
			fetched = true
			break
		}
		if !fetched {
			if lastErr != nil {
				return nil, fmt.Errorf("%w: %s %s: %w", ErrMirrorUnreachable, s.Name, base, lastErr)
			}
			return nil, fmt.Errorf("%w: %s: the Release lists no %s.gz or .xz", ErrBadIndex, s.Name, base)
		}
		if hasPlain {
			if err := checkDigest(got, plain); err != nil {
				return nil, fmt.Errorf("%w: %s %s (uncompressed): %w", ErrBadIndex, s.Name, base, err)
			}
		}
		if err := writeAtomic(dest, got); err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		a.Logger.Info("package index fetched", "suite", s.Name, "component", comp, "bytes", len(got))
	}
	return paths, nil
}

// prune removes cached indexes of other Release digests than the current one.
func (a *Archive) prune(dir, keep string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() && e.Name() != keep && len(e.Name()) == 64 {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

func (a *Archive) get(ctx context.Context, url string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	// Bounded: the largest index (bookworm main Packages.gz) is about 12 MB.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return data, nil
}

// verifyRelease checks the InRelease signature with gpgv and reads the signed text that
// gpgv itself wrote out (never the text around the signature, which is not covered).
func (a *Archive) verifyRelease(ctx context.Context, s Suite, data []byte) (releaseInfo, error) {
	gpgv, err := exec.LookPath("gpgv")
	if err != nil {
		return releaseInfo{}, fmt.Errorf("%w: install the gpgv package: %w", ErrToolMissing, err)
	}
	tmp, err := os.MkdirTemp("", "debate-gpgv-")
	if err != nil {
		return releaseInfo{}, err
	}
	defer os.RemoveAll(tmp)
	in, out := filepath.Join(tmp, "InRelease"), filepath.Join(tmp, "Release")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		return releaseInfo{}, err
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, gpgv, "--keyring", a.Keyring, "--output", out, in)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return releaseInfo{}, fmt.Errorf("%w: %s %s: %s", ErrBadSignature, s.Mirror, s.Name, lastLine(stderr.String()))
	}
	signed, err := os.ReadFile(out)
	if err != nil {
		return releaseInfo{}, err
	}
	rel, err := parseReleaseText(signed)
	if err != nil {
		return releaseInfo{}, fmt.Errorf("%w: %s: %w", ErrBadIndex, s.Name, err)
	}
	if rel.codename != s.Name && rel.suite != s.Name {
		return releaseInfo{}, fmt.Errorf("%w: asked for %s, the Release is for %s (%s)", ErrBadIndex, s.Name, rel.codename, rel.suite)
	}
	if !rel.validUntil.IsZero() && a.Now().After(rel.validUntil) {
		return releaseInfo{}, fmt.Errorf("%w: %s: the Release expired on %s (a stale or replayed mirror)", ErrBadIndex, s.Name, rel.validUntil.Format(time.RFC3339))
	}
	return rel, nil
}

type fileDigest struct {
	sum  string
	size int64
}

type releaseInfo struct {
	suite, codename string
	date            time.Time
	validUntil      time.Time
	byHash          bool
	sha256          map[string]fileDigest
}

func parseReleaseText(text []byte) (releaseInfo, error) {
	r := releaseInfo{sha256: map[string]fileDigest{}}
	first := true
	err := ReadParagraphs(bytes.NewReader(text), func(p Paragraph) error {
		if !first {
			return nil
		}
		first = false
		r.suite, r.codename = p.Get("Suite"), p.Get("Codename")
		r.byHash = strings.EqualFold(p.Get("Acquire-By-Hash"), "yes")
		var err error
		if r.date, err = parseReleaseDate(p.Get("Date")); err != nil {
			return fmt.Errorf("Date: %w", err)
		}
		if v := p.Get("Valid-Until"); v != "" {
			if r.validUntil, err = parseReleaseDate(v); err != nil {
				return fmt.Errorf("Valid-Until: %w", err)
			}
		}
		for _, line := range strings.Split(p.Get("SHA256"), "\n") {
			f := strings.Fields(line)
			if len(f) != 3 {
				continue
			}
			size, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil || len(f[0]) != 64 {
				return fmt.Errorf("SHA256 line %q", line)
			}
			r.sha256[f[2]] = fileDigest{sum: strings.ToLower(f[0]), size: size}
		}
		return nil
	})
	if err == nil && len(r.sha256) == 0 {
		err = errors.New("the Release lists no SHA256 digests")
	}
	return r, err
}

func parseReleaseDate(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, "Mon, _2 Jan 2006 15:04:05 MST", "Mon, _2 Jan 2006 15:04:05 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an RFC 1123 date", s)
}

// clearsignedBody returns the text of a clear-signed message (for reading a copy that was
// verified when it was stored).
func clearsignedBody(data []byte) []byte {
	text := data
	if bytes.HasPrefix(text, []byte("-----BEGIN PGP SIGNED MESSAGE-----")) {
		if i := bytes.Index(text, []byte("\n\n")); i >= 0 {
			text = text[i+2:]
		}
	}
	if i := bytes.Index(text, []byte("\n-----BEGIN PGP SIGNATURE-----")); i >= 0 {
		text = text[:i+1]
	}
	return text
}

func checkDigest(data []byte, want fileDigest) error {
	if int64(len(data)) != want.size {
		return fmt.Errorf("size %d, the Release says %d", len(data), want.size)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != want.sum {
		return fmt.Errorf("sha256 %s, the Release says %s", got, want.sum)
	}
	return nil
}

func decompress(ext string, data []byte) ([]byte, error) {
	var r io.Reader
	switch ext {
	case ".gz":
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = zr
	case ".xz":
		zr, err := xz.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		r = zr
	default:
		return nil, fmt.Errorf("unknown compression %q", ext)
	}
	return io.ReadAll(io.LimitReader(r, 1<<30))
}

// writeAtomic writes a file under a temporary name, syncs it and renames it into place.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
