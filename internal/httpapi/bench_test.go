package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"debate/internal/config"
)

// BenchmarkLiveChain is the cost of the middleware chain and /health, without the network.
func BenchmarkLiveChain(b *testing.B) {
	cfg, err := config.ParseServe([]string{"--tls-self-signed", "--state-dir", b.TempDir()}, func(k string) (string, bool) {
		return "postgres://x@localhost/x", k == "DATABASE_URL"
	})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(cfg, Deps{DB: fakeDB{}, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	req := httptest.NewRequest("GET", "https://localhost/health", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatal(w.Code)
		}
	}
}
