package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"debate/internal/store"
)

// fakeDB only stands in where no database is reached (config checks in New).
type fakeDB struct{}

func (fakeDB) Ping(context.Context) (store.PingResult, error)        { return store.PingResult{}, nil }
func (fakeDB) MigrationStatus(context.Context) (store.Status, error) { return store.Status{}, nil }

func TestLimiterGCRA(t *testing.T) {
	l := newLimiter(100, time.Minute, 1000)
	now := time.Unix(1_000_000, 0)
	for i := 1; i <= 100; i++ {
		d := l.allow("a", now)
		if !d.allowed || d.remaining != 100-i {
			t.Fatalf("request %d: %+v", i, d)
		}
	}
	d := l.allow("a", now)
	if d.allowed || d.retryAfter != 600*time.Millisecond {
		t.Fatalf("101st: %+v", d)
	}
	if !l.allow("b", now).allowed {
		t.Fatal("another client was limited")
	}
	if l.allow("a", now.Add(599*time.Millisecond)).allowed {
		t.Fatal("allowed before the retry time")
	}
	if !l.allow("a", now.Add(600*time.Millisecond)).allowed {
		t.Fatal("not allowed after the retry time")
	}
	// A full minute later the whole allowance is back.
	later := now.Add(2 * time.Minute)
	if d := l.allow("a", later); !d.allowed || d.remaining != 99 {
		t.Fatalf("after a quiet minute: %+v", d)
	}
}

// Many distinct clients cannot grow the limiter past its bound.
func TestLimiterMemoryBounded(t *testing.T) {
	const maxClients = 10_000
	l := newLimiter(100, time.Minute, maxClients)
	now := time.Now()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 1_000_000 {
		l.allow(fmt.Sprintf("198.%d.%d.%d", i>>16&255, i>>8&255, i&255), now)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := l.size(); n > maxClients {
		t.Fatalf("limiter remembers %d clients, bound is %d", n, maxClients)
	}
	// 10 000 entries take well under 5 MB; a million unbounded ones would take ~100 MB.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 5<<20 {
		t.Fatalf("heap grew by %d bytes for a bounded limiter", grown)
	}
	// The most recent clients are the ones kept: the last one is still limited.
	last := fmt.Sprintf("198.%d.%d.%d", 999_999>>16&255, 999_999>>8&255, 999_999&255)
	if d := l.allow(last, now); d.remaining != 98 {
		t.Fatalf("recent client forgotten: %+v", d)
	}
}

func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, c := range []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:5000", "203.0.113.9", "192.0.2.1"},                     // untrusted peer: header ignored
		{"10.1.1.1:5000", "", "10.1.1.1"},                                  // trusted peer, no header
		{"10.1.1.1:5000", "203.0.113.9", "203.0.113.9"},                    // one proxy
		{"10.1.1.1:5000", "6.6.6.6, 203.0.113.9, 10.2.2.2", "203.0.113.9"}, // client-written left part ignored
		{"10.1.1.1:5000", "garbage, 10.2.2.2", "10.2.2.2"},                 // malformed hop: stop at the last trusted
		{"[::1]:5000", "2001:db8::5", "2001:db8::5"},
		{"[::ffff:10.1.1.1]:5000", "203.0.113.9", "203.0.113.9"}, // IPv4-mapped peer
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientAddr(r, trusted).String(); got != c.want {
			t.Errorf("%s XFF %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
	if k := limitKey(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")); k != "2001:db8:1:2::/64" {
		t.Errorf("IPv6 key %s", k)
	}
}

func TestCookiesAreLockedDown(t *testing.T) {
	w := httptest.NewRecorder()
	setCookie(w, &http.Cookie{Name: "session", Value: "v", SameSite: http.SameSiteNoneMode})
	c := w.Result().Cookies()[0]
	if !c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Path != "/" {
		t.Fatalf("cookie %+v", c)
	}
}
