package debian

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"debate/internal/testenv"
)

// testCacheDir is where the real index is kept between test runs.
func testCacheDir() string { return filepath.Join(testenv.CacheRoot(), "index") }

func needNetworkTools(t *testing.T) {
	t.Helper()
	testenv.Need(t, "gpgv and the Debian archive keyring", testenv.Tool("gpgv", "gpgv"), testenv.File(DefaultKeyring, "debian-archive-keyring"))
}

func realArchive(t *testing.T) *Archive {
	return &Archive{Suites: DefaultSuites("", "", "bookworm"), CacheDir: testCacheDir()}
}

func TestArchiveLoadReal(t *testing.T) {
	needNetworkTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a := realArchive(t)
	l, err := a.Load(ctx)
	if err != nil {
		if !testenv.InCI() && errors.Is(err, ErrMirrorUnreachable) {
			t.Skipf("no network: %v", err)
		}
		t.Fatal(err)
	}
	if l.Index.NameCount() < 60000 || len(l.Pins) != 3 {
		t.Fatalf("%d names, pins %+v", l.Index.NameCount(), l.Pins)
	}
	for _, p := range l.Pins {
		if len(p.SHA256) != 64 || p.Date.IsZero() {
			t.Errorf("pin %+v", p)
		}
	}
	// Packages from the security suite win over the release's older versions.
	if id, ok := l.Index.Candidate("openssh-server"); !ok || !strings.HasPrefix(l.Index.Package(id).Suite, "bookworm") {
		t.Errorf("openssh-server: %v %+v", ok, l.Index.Package(id))
	}
	// A second load asks the mirror again but downloads no index: same digests, same
	// files (their modification times do not move).
	main := filepath.Join(a.suiteDir(a.Suites[0]), l.Pins[0].SHA256, "main_binary-amd64_Packages")
	st1, err := os.Stat(main)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := (&Archive{Suites: a.Suites, CacheDir: a.CacheDir}).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := os.Stat(main)
	if l2.Pins[0].SHA256 != l.Pins[0].SHA256 || !st1.ModTime().Equal(st2.ModTime()) {
		t.Errorf("reloaded: %+v, mtime %v -> %v", l2.Pins[0], st1.ModTime(), st2.ModTime())
	}
	// With MaxAge the mirror is not asked at all.
	l3, err := (&Archive{Suites: a.Suites, CacheDir: a.CacheDir, MaxAge: time.Hour, Client: &http.Client{Transport: failingTransport{}}}).Load(ctx)
	if err != nil || !l3.Pins[0].Cached || len(l3.Warnings) != 0 {
		t.Errorf("MaxAge load: %v %+v %v", err, l3, err)
	}
}

type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network disabled by the test")
}

func TestArchiveRefusesTamperedFiles(t *testing.T) {
	needNetworkTools(t)
	ctx := context.Background()
	a := realArchive(t)
	a.Suites = a.Suites[:1]
	if _, err := a.Load(ctx); err != nil {
		if !testenv.InCI() && errors.Is(err, ErrMirrorUnreachable) {
			t.Skipf("no network: %v", err)
		}
		t.Fatal(err)
	}
	real, err := os.ReadFile(filepath.Join(a.suiteDir(a.Suites[0]), "InRelease"))
	if err != nil {
		t.Fatal(err)
	}
	serve := func(inRelease []byte, index []byte) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/InRelease") {
				w.Write(inRelease)
				return
			}
			w.Write(index)
		}))
	}
	for name, tc := range map[string]struct {
		inRelease, index []byte
		want             error
	}{
		// One changed byte in the signed text: gpgv refuses it.
		"signature": {[]byte(strings.Replace(string(real), "Label: Debian", "Label: Debiam", 1)), nil, ErrBadSignature},
		// A genuine Release, but an index that does not match its digest.
		"digest": {real, []byte("Package: evil\nVersion: 1\n\n"), ErrBadIndex},
		// Not signed at all.
		"unsigned": {clearsignedBody(real), nil, ErrBadSignature},
	} {
		t.Run(name, func(t *testing.T) {
			srv := serve(tc.inRelease, tc.index)
			defer srv.Close()
			b := &Archive{Suites: []Suite{{srv.URL + "/debian", "bookworm"}}, CacheDir: t.TempDir()}
			if _, err := b.Load(ctx); !errors.Is(err, tc.want) {
				t.Errorf("Load = %v, want %v", err, tc.want)
			}
		})
	}
	// Unreachable with nothing cached: a clear error.
	b := &Archive{Suites: []Suite{{"http://127.0.0.1:9/debian", "bookworm"}}, CacheDir: t.TempDir()}
	if _, err := b.Load(ctx); !errors.Is(err, ErrMirrorUnreachable) {
		t.Errorf("unreachable: %v", err)
	}
	// Unreachable with a verified copy cached: used, with a warning.
	c := &Archive{Suites: a.Suites, CacheDir: a.CacheDir, Client: &http.Client{Transport: failingTransport{}}}
	l, err := c.Load(ctx)
	if err != nil || len(l.Warnings) != 1 || !l.Pins[0].Cached {
		t.Errorf("stale cache: %v %+v", err, l)
	}
}
