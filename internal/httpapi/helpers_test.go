package httpapi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
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

	"debate/internal/artifact"
	"debate/internal/config"
	"debate/internal/pgtest"
	"debate/internal/store"
	"debate/internal/testenv"
)

var pg pgtest.Harness

func TestMain(m *testing.M) { os.Exit(pg.Run(m)) }

// testServer is a real server on loopback: self-signed TLS, a redirect listener, and a
// migrated database of its own in the package's throw-away cluster.
type testServer struct {
	t        *testing.T
	srv      *Server
	store    *store.Store
	arts     *artifact.Store // with builds
	base     string          // https://127.0.0.1:PORT
	port     int
	httpBase string // http://127.0.0.1:PORT of the redirect listener
	client   *http.Client
	logs     *testenv.Buffer
	cancel   context.CancelFunc
	done     chan error
}

type serverOpts struct {
	args      []string // extra serve flags
	extra     []route  // test-only routes
	noMigrate bool
	plainHTTP bool // no TLS at all
	builds    bool // with the build service (no workers: builds stay queued)
}

func startServer(t *testing.T, o serverOpts) *testServer {
	t.Helper()
	var url string
	if o.noMigrate {
		url = pg.NewDatabase(t)
	} else {
		url = pg.NewDatabaseFrom(t, "migrated", store.MigrateURL)
	}
	st, err := store.Open(context.Background(), url, store.Options{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	stateDir := t.TempDir()
	args := []string{"--listen", "127.0.0.1:0", "--ready-tools", "sh", "--state-dir", stateDir}
	if !o.plainHTTP {
		args = append(args, "--tls-self-signed", "--http-listen", "127.0.0.1:0")
	}
	args = append(args, o.args...)
	cfg, err := config.ParseServe(args, func(k string) (string, bool) {
		if k == "DATABASE_URL" {
			return url, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	deps := Deps{DB: st, Logger: logger, Version: "test-version"}
	var arts *artifact.Store
	if o.builds {
		deps.Builds, arts = newBuildService(t, st, cfg, logger)
	}
	s, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.extra) > 0 {
		s.routes = append(s.routes, o.extra...)
		s.handler = s.buildHandler()
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var rln net.Listener
	ts := &testServer{t: t, srv: s, store: st, arts: arts, logs: logs, done: make(chan error, 1)}
	ts.port = ln.Addr().(*net.TCPAddr).Port
	if o.plainHTTP {
		ts.base = "http://" + ln.Addr().String()
	} else {
		ts.base = "https://" + ln.Addr().String()
		rln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ts.httpBase = "http://" + rln.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	go func() { ts.done <- s.Serve(ctx, ln, rln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.done:
		case <-time.After(40 * time.Second):
			t.Error("server did not stop")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})

	tr := &http.Transport{MaxIdleConnsPerHost: 10}
	if !o.plainHTTP {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(filepath.Join(stateDir, "ca", "ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	t.Cleanup(tr.CloseIdleConnections)
	ts.client = &http.Client{Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return ts
}

// caPool is the pool of the server's self-signed CA.
func (ts *testServer) caPool() *x509.CertPool {
	return ts.client.Transport.(*http.Transport).TLSClientConfig.RootCAs
}

type response struct {
	status int
	header http.Header
	body   []byte
	proto  string
}

// errorCode is the error code of a JSON error body ("" if none).
func (r response) errorCode() string {
	var e errorBody
	_ = json.Unmarshal(r.body, &e)
	return e.Error.Code
}

func (ts *testServer) do(req *http.Request) response {
	ts.t.Helper()
	resp, err := ts.client.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b, proto: resp.Proto}
}

func (ts *testServer) request(method, path string, body string, headers ...string) response {
	ts.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Host" {
			req.Host = headers[i+1]
			continue
		}
		req.Header.Set(headers[i], headers[i+1])
	}
	return ts.do(req)
}

func (ts *testServer) get(path string, headers ...string) response {
	ts.t.Helper()
	return ts.request(http.MethodGet, path, "", headers...)
}

func (ts *testServer) origin() string { return "https://127.0.0.1:" + strconv.Itoa(ts.port) }
