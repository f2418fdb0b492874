package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"debate/internal/pgtest"
)

// lockedBuffer is written by the server goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestServeConfigErrorsNameTheSetting(t *testing.T) {
	t.Setenv("DATABASE_URL", "")
	t.Setenv("DEBATE_LISTEN", "not-an-address")
	var out, errb bytes.Buffer
	code := runServe(context.Background(), []string{"--rate-limit", "-1", "--tls-auto", "x.example.org"}, &out, &errb)
	if code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	for _, want := range []string{"--rate-limit", "DEBATE_LISTEN", "--state-dir", "DATABASE_URL"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr does not name %s:\n%s", want, errb.String())
		}
	}
	errb.Reset()
	if code := runMigrate(context.Background(), []string{"--log-format", "xml"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "--log-format") {
		t.Fatalf("migrate: exit %d: %s", code, errb.String())
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// The commands end to end: migrate twice, then serve over self-signed TLS until the
// context (SIGTERM) ends it.
func TestMigrateThenServe(t *testing.T) {
	cluster := pgtest.StartForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := cluster.CreateDatabase(ctx, "cmd")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", url)

	var out, errb bytes.Buffer
	if code := runMigrate(ctx, []string{"--log-format", "text"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "applied 0001_baseline") {
		t.Fatalf("first migrate: exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := runMigrate(ctx, nil, &out, &errb); code != 0 || !strings.Contains(out.String(), "nothing to apply") {
		t.Fatalf("second migrate: exit %d\n%s%s", code, out.String(), errb.String())
	}

	state := t.TempDir()
	port := freePort(t)
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	logs := &lockedBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- runServe(sctx, []string{"--listen", "127.0.0.1:" + strconv.Itoa(port), "--http-listen", "127.0.0.1:0",
			"--tls-self-signed", "--state-dir", state, "--ready-tools", "sh", "--migrate-on-start", "--metrics-listen", "127.0.0.1:0"}, io.Discard, logs)
	}()

	var client *http.Client
	deadline := time.Now().Add(20 * time.Second)
	for client == nil {
		if pem, err := os.ReadFile(filepath.Join(state, "ca", "ca.pem")); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		} else if time.Now().After(deadline) {
			t.Fatalf("no CA written: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	base := "https://localhost:" + strconv.Itoa(port)
	for {
		resp, err := client.Get(base + "/api/v1/health/ready")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("ready: %d %s", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server never answered: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exit %d after SIGTERM-like stop\n%s", code, logs.String())
		}
	case <-time.After(40 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) || !strings.Contains(logs.String(), `"msg":"schema is current"`) {
		t.Errorf("log lacks start-up/shutdown lines:\n%s", logs.String())
	}
}

func TestLogBufferFlushes(t *testing.T) {
	out := &lockedBuffer{}
	b := newLogBuffer(out, 300*time.Millisecond)
	logger := slog.New(flushOnWarn{slog.NewJSONHandler(b, nil), b.Flush})
	logger.Info("quiet")
	if strings.Contains(out.String(), "quiet") {
		t.Fatal("info line written at once: the buffer does nothing")
	}
	logger.With("k", "v").Warn("loud")
	if !strings.Contains(out.String(), "loud") || !strings.Contains(out.String(), "quiet") {
		t.Fatalf("warning not flushed at once: %q", out.String())
	}
	logger.Info("later")
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "later") {
		if time.Now().After(deadline) {
			t.Fatal("buffered line never flushed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	logger.Info("last")
	b.Close()
	if !strings.Contains(out.String(), "last") {
		t.Fatal("Close lost a line")
	}
}
