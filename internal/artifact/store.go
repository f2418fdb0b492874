// Package artifact stores build outputs by content: a file's name is its sha256. Files are
// written under a temporary name, synced and renamed, so that a reader never sees a partial
// file and a crashed writer leaves only a temporary file that Sweep removes. The store is a
// directory now; workers on other machines share it (NFS or similar) or, later, an object
// store behind the same methods.
package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// ErrNotFound: no artifact with that digest.
var ErrNotFound = errors.New("artifact not found")

// ErrDigestMismatch: the bytes did not hash to the digest they were announced with.
var ErrDigestMismatch = errors.New("artifact digest mismatch")

var digestRe = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Store is a content-addressed directory: <root>/sha256/<first two hex>/<digest>.
type Store struct {
	root string
}

// Open opens (creating if needed) a store rooted at dir.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("artifact store: no directory given")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{filepath.Join(abs, "sha256"), filepath.Join(abs, "tmp")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("artifact store: %w", err)
		}
	}
	return &Store{root: abs}, nil
}

// Root is the store's directory.
func (s *Store) Root() string { return s.root }

// Path returns where the artifact with this digest lives (whether or not it exists).
func (s *Store) Path(digest string) (string, error) {
	if !digestRe.MatchString(digest) {
		return "", fmt.Errorf("artifact store: %q is not a sha256 digest", digest)
	}
	return filepath.Join(s.root, "sha256", digest[:2], digest), nil
}

// Put copies the file at src into the store and returns its digest and size. If want is
// not empty, the content must hash to it. Putting content that is already there is cheap
// and safe: the existing file is kept.
func (s *Store) Put(src, want string) (digest string, size int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return "", 0, err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "put-*")
	if err != nil {
		return "", 0, fmt.Errorf("artifact store: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	h := sha256.New()
	size, err = io.Copy(io.MultiWriter(tmp, h), in)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, fmt.Errorf("artifact store: write: %w", err)
	}
	digest = hex.EncodeToString(h.Sum(nil))
	if want != "" && want != digest {
		return "", 0, fmt.Errorf("%w: expected %s, got %s", ErrDigestMismatch, want, digest)
	}
	final, _ := s.Path(digest)
	if _, err := os.Stat(final); err == nil {
		return digest, size, nil
	}
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return "", 0, fmt.Errorf("artifact store: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o444); err != nil {
		return "", 0, err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", 0, fmt.Errorf("artifact store: publish: %w", err)
	}
	if d, err := os.Open(filepath.Dir(final)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return digest, size, nil
}

// Get opens an artifact for reading.
func (s *Store) Get(digest string) (*os.File, error) {
	p, err := s.Path(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, digest)
	}
	return f, err
}

// Remove deletes an artifact (a no-op if it is gone).
func (s *Store) Remove(digest string) error {
	p, err := s.Path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Sweep removes temporary files older than age: what writers that died left behind.
func (s *Store) Sweep(age time.Duration) (int, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "tmp"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !strings.HasPrefix(e.Name(), "put-") || time.Since(info.ModTime()) < age {
			continue
		}
		if os.Remove(filepath.Join(s.root, "tmp", e.Name())) == nil {
			n++
		}
	}
	return n, nil
}
