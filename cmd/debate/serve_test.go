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
	"testing"
	"time"

	"debate/internal/backup"
	"debate/internal/pgtest"
	"debate/internal/store"
	"debate/internal/testenv"
)

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

// served is `debate serve` running in this process, as a test starts it.
type served struct {
	logs *testenv.Buffer
	stop context.CancelFunc
	done chan int
}

// startServe runs `debate serve args…` until stopServe (or the test's end).
func startServe(t *testing.T, args ...string) *served {
	t.Helper()
	ctx, stop := context.WithCancel(context.Background())
	s := &served{logs: &testenv.Buffer{}, stop: stop, done: make(chan int, 1)}
	go func() { s.done <- runServe(ctx, args, io.Discard, s.logs) }()
	t.Cleanup(stop)
	return s
}

// stopServe stops the server as SIGTERM does and returns its exit code (-1: it did not
// stop within within).
func (s *served) stopServe(within time.Duration) int {
	s.stop()
	select {
	case code := <-s.done:
		return code
	case <-time.After(within):
		return -1
	}
}

// trustServer waits until the server in state wrote its local CA and returns a transport
// that trusts it.
func trustServer(t *testing.T, state string, within time.Duration, logs *testenv.Buffer) *http.Transport {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		pem, err := os.ReadFile(filepath.Join(state, "ca", "ca.pem"))
		if err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 16}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no CA written: %v\n%s", err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
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
	srv := startServe(t, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--http-listen", "127.0.0.1:0",
		"--tls-self-signed", "--state-dir", state, "--ready-tools", "sh", "--migrate-on-start", "--metrics-listen", "127.0.0.1:0")
	logs := srv.logs
	deadline := time.Now().Add(20 * time.Second)
	client := &http.Client{Timeout: 5 * time.Second, Transport: trustServer(t, state, 20*time.Second, logs)}
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
	if code := srv.stopServe(40 * time.Second); code != 0 {
		t.Fatalf("serve exit %d after SIGTERM-like stop (-1: did not stop)\n%s", code, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) || !strings.Contains(logs.String(), `"msg":"schema is current"`) {
		t.Errorf("log lacks start-up/shutdown lines:\n%s", logs.String())
	}
}

func TestLogBufferFlushes(t *testing.T) {
	out := &testenv.Buffer{}
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

// TestServerBacksUpWhileAWorkerLeads: the deployment where backups used to stop. A
// `debate worker` (no backup settings) starts first and is River's elected leader; then
// `debate serve --backup-dir` starts. The server's own schedule takes a backup and
// verifies it (the watchdog at start), so readiness turns from degraded to ready with
// the backups check passing, while the worker still leads.
func TestServerBacksUpWhileAWorkerLeads(t *testing.T) {
	requireBuilds(t)
	cluster := pgtest.StartForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url, err := cluster.CreateDatabase(ctx, "leader")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", url)
	var out bytes.Buffer
	if code := runMigrate(ctx, nil, &out, &out); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, out.String())
	}
	st, err := store.Open(ctx, url, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	leader := func() string {
		id, err := st.RiverLeader(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}

	state := t.TempDir()
	s := &service{t: t, dbURL: url, arts: filepath.Join(state, "artifacts"), cache: testPackageCache(t)}
	w := s.startWorker(t)
	workerPID := "-" + strconv.Itoa(w.cmd.Process.Pid) + "-" // in its River client id
	for !strings.Contains(leader(), workerPID) {
		if ctx.Err() != nil || !w.running() {
			t.Fatalf("the worker never became River's leader (leader %q)\n%s", leader(), w.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	backups := t.TempDir()
	port := freePort(t)
	srv := startServe(t, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--http-listen", "",
		"--tls-self-signed", "--state-dir", state, "--artifact-dir", s.arts, "--ready-tools", "sh",
		"--metrics-listen", "", "--backup-dir", backups)
	client := &http.Client{Timeout: 5 * time.Second, Transport: trustServer(t, state, 30*time.Second, srv.logs)}
	var body []byte
	for {
		if resp, err := client.Get("https://localhost:" + strconv.Itoa(port) + "/api/v1/health/ready"); err == nil {
			body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.Contains(string(body), `"status":"ready"`) {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("not ready with backups: %s\n%s", body, srv.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(string(body), `"backups":{"ok":true`) {
		t.Fatalf("readiness without a passing backups check: %s", body)
	}
	if l := leader(); !strings.Contains(l, workerPID) {
		t.Fatalf("leader is now %q, not the worker: the test no longer shows a worker-led cluster", l)
	}
	es, err := backup.List(backups)
	if err != nil || len(es) != 1 || !es[0].Complete {
		t.Fatalf("backup folder: %+v %v", es, err)
	}
	var verified bool
	if err := st.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT FROM backup_runs WHERE kind = 'verify' AND ok AND file = $1)`,
		es[0].Name()).Scan(&verified); err != nil || !verified {
		t.Fatalf("no passed verification of %s recorded (%v)", es[0].Name(), err)
	}
	if code := srv.stopServe(40 * time.Second); code != 0 {
		t.Fatalf("serve exit %d (-1: did not stop)\n%s", code, srv.logs.String())
	}
}
