package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestPutGetIsContentAddressed(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "x.iso")
	data := []byte("an image")
	os.WriteFile(src, data, 0o644)
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])

	d, n, err := s.Put(src, "")
	if err != nil || d != want || n != int64(len(data)) {
		t.Fatalf("put: %s %d %v", d, n, err)
	}
	// Again, with the digest announced: the same place, no error.
	if d2, _, err := s.Put(src, want); err != nil || d2 != d {
		t.Fatalf("second put: %s %v", d2, err)
	}
	f, err := s.Get(d)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != string(data) {
		t.Fatalf("read back %q", got)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.Root(), "tmp")); len(entries) != 0 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

func TestPutRefusesWrongDigest(t *testing.T) {
	s, _ := Open(t.TempDir())
	src := filepath.Join(t.TempDir(), "x")
	os.WriteFile(src, []byte("a"), 0o644)
	_, _, err := s.Put(src, "0000000000000000000000000000000000000000000000000000000000000000")
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("want mismatch, got %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.Root(), "sha256")); len(entries) != 0 {
		t.Fatal("a mismatching file was published")
	}
}

func TestGetRejectsBadDigestsAndMissing(t *testing.T) {
	s, _ := Open(t.TempDir())
	for _, d := range []string{"../../etc/passwd", "abc", ""} {
		if _, err := s.Get(d); err == nil {
			t.Errorf("%q accepted", d)
		}
	}
	if _, err := s.Get("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("want not found, got %v", err)
	}
}

func TestSweepRemovesOldTemporaries(t *testing.T) {
	s, _ := Open(t.TempDir())
	old := filepath.Join(s.Root(), "tmp", "put-1")
	os.WriteFile(old, []byte("partial"), 0o644)
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	fresh := filepath.Join(s.Root(), "tmp", "put-2")
	os.WriteFile(fresh, []byte("in progress"), 0o644)
	n, err := s.Sweep(time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatal("a fresh temporary was removed")
	}
}
