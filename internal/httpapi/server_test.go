package httpapi

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"debate/internal/config"
)

var securityHeaderNames = []string{
	"Strict-Transport-Security", "Content-Security-Policy", "X-Content-Type-Options",
	"X-Frame-Options", "Referrer-Policy", "Permissions-Policy", "Cross-Origin-Opener-Policy",
	"X-Request-Id",
}

func checkSecurityHeaders(t *testing.T, what string, r response) {
	t.Helper()
	for _, h := range securityHeaderNames {
		if r.header.Get(h) == "" {
			t.Errorf("%s (status %d): no %s header", what, r.status, h)
		}
	}
	if got := r.header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q", what, got)
	}
	if got := r.header.Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("%s: X-Frame-Options %q", what, got)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-") {
		t.Errorf("%s: CSP %q", what, csp)
	}
}

func panicRoute() route {
	return route{"GET", "/api/v1/test/panic", groupAPI, func(http.ResponseWriter, *http.Request) error {
		panic("secret internal detail")
	}}
}

func echoRoute() route {
	return route{"POST", "/api/v1/test/echo", groupAPI, func(w http.ResponseWriter, r *http.Request) error {
		var v struct {
			Name string `json:"name"`
		}
		if err := decodeJSON(r, &v); err != nil {
			return err
		}
		if v.Name == "" {
			return &FieldError{Field: "name", Reason: "required"}
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	}}
}

// Security headers are on every answer: each route, errors of every kind, redirects aside.
func TestSecurityHeadersOnEveryRoute(t *testing.T) {
	ts := startServer(t, serverOpts{args: []string{"--rate-limit-group", "api=30"}, extra: []route{panicRoute()}})
	for _, rt := range ts.srv.routeTable() {
		path := strings.NewReplacer("{id}", "00000000-0000-0000-0000-000000000000", "{name}", "x.iso").Replace(rt.path)
		r := ts.request(rt.method, path, "")
		// Routes with a path parameter or a body need real input (and builds the build
		// service, not configured here): their error answers must carry the headers too.
		if rt.method == "GET" && !strings.Contains(rt.path, "{") && r.status != http.StatusOK {
			t.Errorf("%s %s: status %d: %s", rt.method, rt.path, r.status, r.body)
		}
		checkSecurityHeaders(t, rt.method+" "+rt.path, r)
	}
	cases := map[string]struct {
		r    response
		code int
	}{
		"unknown path":     {ts.get("/nope"), 404},
		"wrong method":     {ts.request("DELETE", "/health", ""), 405},
		"wrong host":       {ts.get("/health", "Host", "evil.example"), 400},
		"panic":            {ts.get("/api/v1/test/panic"), 500},
		"denied preflight": {ts.request("OPTIONS", "/api/v1/version", "", "Origin", "https://evil.example", "Access-Control-Request-Method", "POST"), 403},
	}
	for name, c := range cases {
		if c.r.status != c.code {
			t.Errorf("%s: status %d, want %d", name, c.r.status, c.code)
		}
		checkSecurityHeaders(t, name, c.r)
	}
	var last response
	for range 40 {
		last = ts.get("/api/v1/version")
	}
	if last.status != http.StatusTooManyRequests {
		t.Fatalf("want 429 after 40 requests with api=30, got %d", last.status)
	}
	checkSecurityHeaders(t, "429", last)
	if got := cases["wrong method"].r.header.Get("Allow"); !strings.Contains(got, "GET") {
		t.Errorf("405 Allow header %q", got)
	}
}

func TestHSTSOnlyOverTLS(t *testing.T) {
	ts := startServer(t, serverOpts{plainHTTP: true})
	r := ts.get("/health")
	if r.status != 200 || r.header.Get("Strict-Transport-Security") != "" {
		t.Fatalf("plain HTTP: status %d, HSTS %q", r.status, r.header.Get("Strict-Transport-Security"))
	}
	if r.header.Get("Content-Security-Policy") == "" {
		t.Error("plain HTTP lacks the other security headers")
	}
}

func TestRateLimit101stRequest(t *testing.T) {
	ts := startServer(t, serverOpts{})
	// The allowance refills smoothly (one request every 600 ms at 100/min), so on a slow
	// machine a request or two may be earned back while the first hundred are sent: the
	// count of answers before the first 429 must be 100 plus what the elapsed time earned.
	start := time.Now()
	ok := 0
	var r response
	for {
		r = ts.get("/api/v1/version")
		if r.status != http.StatusOK {
			break
		}
		ok++
		if r.header.Get("RateLimit-Limit") != "100" {
			t.Fatalf("RateLimit-Limit %q", r.header.Get("RateLimit-Limit"))
		}
		if rem, err := strconv.Atoi(r.header.Get("RateLimit-Remaining")); err != nil || rem > 100-ok+int(time.Since(start)/(600*time.Millisecond)) || rem < 0 {
			t.Fatalf("request %d: RateLimit-Remaining %q", ok, r.header.Get("RateLimit-Remaining"))
		}
		if ok > 200 {
			t.Fatal("no 429 after 200 requests")
		}
	}
	earned := int(time.Since(start) / (600 * time.Millisecond))
	if ok < 100 || ok > 100+earned {
		t.Fatalf("%d requests answered before the first 429 in %s; want 100 (+%d refilled)", ok, time.Since(start), earned)
	}
	if r.status != http.StatusTooManyRequests || r.errorCode() != "rate_limited" {
		t.Fatalf("request %d: %d %s", ok+1, r.status, r.body)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if r.header.Get("RateLimit-Remaining") != "0" || r.header.Get("RateLimit-Reset") == "" {
		t.Errorf("429 headers %v", r.header)
	}
	// Unknown paths count against the same allowance.
	if r := ts.get("/no-such-path"); r.status != http.StatusTooManyRequests {
		t.Errorf("unknown path after the limit: %d", r.status)
	}
	// Health is exempt: well past the limit, every probe still answers.
	for i := range 150 {
		for _, p := range []string{"/health", "/api/v1/health/ready", "/api/v1/health/db"} {
			r := ts.get(p)
			if r.status != http.StatusOK {
				t.Fatalf("%s after %d: %d %s", p, i, r.status, r.body)
			}
			if r.header.Get("RateLimit-Limit") != "" {
				t.Fatalf("%s carries rate-limit headers", p)
			}
		}
	}
}

func TestRateLimitOffAndPerGroup(t *testing.T) {
	off := startServer(t, serverOpts{args: []string{"--rate-limit", "0"}})
	for i := range 150 {
		if r := off.get("/api/v1/version"); r.status != 200 {
			t.Fatalf("rate limit 0, request %d: %d", i, r.status)
		}
	}
	grp := startServer(t, serverOpts{args: []string{"--rate-limit", "0", "--rate-limit-group", "api=5"}})
	for i := range 5 {
		if r := grp.get("/api/v1/version"); r.status != 200 {
			t.Fatalf("api=5, request %d: %d", i, r.status)
		}
	}
	if r := grp.get("/api/v1/version"); r.status != 429 {
		t.Fatalf("api=5, 6th request: %d", r.status)
	}
}

func TestUnknownRateLimitGroupNamed(t *testing.T) {
	cfg, err := config.ParseServe([]string{"--rate-limit-group", "bogus=3"}, func(k string) (string, bool) {
		return "postgres://x@localhost/x", k == "DATABASE_URL"
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg, Deps{DB: fakeDB{}})
	if err == nil || !strings.Contains(err.Error(), "--rate-limit-group") || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("error %v", err)
	}
}

// Forwarded-for headers are believed only from trusted proxies.
func TestClientIdentityBehindProxy(t *testing.T) {
	direct := startServer(t, serverOpts{args: []string{"--rate-limit", "2"}})
	for i := range 3 {
		r := direct.get("/api/v1/version", "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i))
		if want := map[bool]int{true: 429, false: 200}[i == 2]; r.status != want {
			t.Fatalf("untrusted peer, spoofed XFF #%d: %d, want %d (XFF must be ignored)", i, r.status, want)
		}
	}
	proxied := startServer(t, serverOpts{args: []string{"--rate-limit", "2", "--trusted-proxies", "127.0.0.0/8"}})
	for i := range 2 {
		if r := proxied.get("/api/v1/version", "X-Forwarded-For", "198.51.100.7, 203.0.113.5"); r.status != 200 {
			t.Fatalf("client A request %d: %d", i, r.status)
		}
	}
	if r := proxied.get("/api/v1/version", "X-Forwarded-For", "198.51.100.9, 203.0.113.5"); r.status != 429 {
		t.Fatalf("client A again (left hop is client-written, ignored): %d", r.status)
	}
	if r := proxied.get("/api/v1/version", "X-Forwarded-For", "203.0.113.6"); r.status != 200 {
		t.Fatalf("client B: %d", r.status)
	}
	if !strings.Contains(proxied.logs.String(), `"client":"203.0.113.6"`) {
		t.Error("access log does not show the forwarded client address")
	}
}

func TestCrossOriginProtection(t *testing.T) {
	ts := startServer(t, serverOpts{extra: []route{echoRoute()}, args: []string{"--cors-origins", "https://app.example"}})
	body := `{"name":"speech"}`
	cases := []struct {
		name    string
		headers []string
		want    int
	}{
		{"cross-site fetch", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, 403},
		{"same-site other origin", []string{"Sec-Fetch-Site", "same-site", "Origin", "https://other.127.0.0.1"}, 403},
		{"old browser, foreign Origin", []string{"Origin", "https://evil.example"}, 403},
		{"same-origin fetch", []string{"Sec-Fetch-Site", "same-origin", "Origin", ts.origin()}, 200},
		{"old browser, same Origin", []string{"Origin", ts.origin()}, 200},
		{"non-browser client", nil, 200},
		{"CORS-allowed origin", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://app.example"}, 200},
	}
	for _, c := range cases {
		r := ts.request("POST", "/api/v1/test/echo", body, append([]string{"Content-Type", "application/json"}, c.headers...)...)
		if r.status != c.want {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.want, r.body)
		}
		if c.want == 403 && r.errorCode() != "cross_origin" {
			t.Errorf("%s: code %q", c.name, r.errorCode())
		}
	}
	// Reading is not state-changing: a cross-site GET passes (CORS decides what the page sees).
	if r := ts.get("/api/v1/version", "Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("cross-site GET: %d, ACAO %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestCORSAllowList(t *testing.T) {
	none := startServer(t, serverOpts{})
	r := none.request("OPTIONS", "/api/v1/version", "", "Origin", "https://app.example", "Access-Control-Request-Method", "GET")
	if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("default (no origins) preflight: %d ACAO %q", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	ts := startServer(t, serverOpts{args: []string{"--cors-origins", "https://app.example"}})
	r = ts.request("OPTIONS", "/api/v1/version", "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("allowed preflight: %d %v", r.status, r.header)
	}
	r = ts.get("/api/v1/version", "Origin", "https://app.example")
	if r.header.Get("Access-Control-Allow-Origin") != "https://app.example" || !strings.Contains(r.header.Get("Vary"), "Origin") {
		t.Fatalf("allowed GET headers: %v", r.header)
	}
	r = ts.get("/api/v1/version", "Origin", "https://evil.example")
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin got ACAO %q", r.header.Get("Access-Control-Allow-Origin"))
	}
}

func TestTrustedHosts(t *testing.T) {
	ts := startServer(t, serverOpts{args: []string{"--allowed-hosts", "localhost,127.0.0.1,*.debate.test"}})
	for host, want := range map[string]int{
		"evil.example":                       400,
		"localhost.evil.example":             400,
		"debate.test":                        400,
		"localhost:" + strconv.Itoa(ts.port): 200,
		"LOCALHOST.":                         200,
		"api.debate.test":                    200,
		"127.0.0.1":                          200,
	} {
		r := ts.get("/api/v1/version", "Host", host)
		if r.status != want {
			t.Errorf("Host %q: %d, want %d", host, r.status, want)
		}
		if want == 400 && r.errorCode() != "host_not_allowed" {
			t.Errorf("Host %q: code %q", host, r.errorCode())
		}
	}
}

func TestHTTPRedirectsToHTTPS(t *testing.T) {
	ts := startServer(t, serverOpts{})
	req, _ := http.NewRequest("GET", ts.httpBase+"/api/v1/version?x=1", nil)
	r := ts.do(req)
	want := fmt.Sprintf("https://127.0.0.1:%d/api/v1/version?x=1", ts.port)
	if r.status != http.StatusPermanentRedirect || r.header.Get("Location") != want {
		t.Fatalf("redirect: %d Location %q, want 308 %q", r.status, r.header.Get("Location"), want)
	}
	// Following it lands on the HTTPS server with a verified certificate.
	follow := &http.Client{Transport: ts.client.Transport}
	resp, err := follow.Get(ts.httpBase + "/api/v1/version")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("after redirect: %d TLS=%v", resp.StatusCode, resp.TLS != nil)
	}
	// No redirect to hosts we do not serve.
	req, _ = http.NewRequest("GET", ts.httpBase+"/", nil)
	req.Host = "evil.example"
	if r := ts.do(req); r.status != 400 || r.header.Get("Location") != "" {
		t.Fatalf("redirect for a foreign host: %d %q", r.status, r.header.Get("Location"))
	}
}

// With --tls-auto the plain-HTTP listener answers ACME http-01 challenges itself and
// redirects the rest. (Getting a real certificate needs a public CA, out of reach here.)
func TestACMEChallengeNotRedirected(t *testing.T) {
	ts := startServer(t, serverOpts{plainHTTP: true, args: []string{"--tls-auto", "debate.example.org", "--http-listen", "127.0.0.1:0", "--redirect-port", "443"}})
	if ts.srv.tls == nil || ts.srv.tls.acme == nil {
		t.Fatal("no ACME manager")
	}
	if !containsString(ts.srv.tls.config.NextProtos, "acme-tls/1") {
		t.Error("TLS-ALPN-01 protocol not offered")
	}
	h := ts.srv.redirectHandler(443)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	get := func(path string) response {
		req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+path, nil)
		req.Host = "debate.example.org"
		return ts.do(req)
	}
	if r := get("/.well-known/acme-challenge/some-token"); r.status == http.StatusPermanentRedirect {
		t.Fatalf("ACME challenge was redirected")
	}
	if r := get("/x"); r.status != http.StatusPermanentRedirect || r.header.Get("Location") != "https://debate.example.org/x" {
		t.Fatalf("redirect: %d %q", r.status, r.header.Get("Location"))
	}
	// The manager refuses names outside --tls-auto before contacting any CA.
	if _, err := ts.srv.tls.config.GetCertificate(&tls.ClientHelloInfo{ServerName: "evil.example"}); err == nil {
		t.Error("certificate requested for a host outside --tls-auto")
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestTLSVersionsAndHTTP2(t *testing.T) {
	ts := startServer(t, serverOpts{})
	addr := strings.TrimPrefix(ts.base, "https://")
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ts.caPool(), MaxVersion: v, ServerName: "127.0.0.1"})
		if err == nil {
			conn.Close()
			t.Errorf("TLS version %x accepted", v)
		}
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ts.caPool(), MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}})
	if err == nil {
		conn.Close()
		t.Error("a CBC suite was accepted over TLS 1.2")
	}
	conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: ts.caPool(), MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS 1.2 with modern suites: %v", err)
	}
	conn.Close()

	h2 := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ts.caPool()}, ForceAttemptHTTP2: true}}
	resp, err := h2.Get(ts.base + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 {
		t.Errorf("HTTP/2 not negotiated: %s", resp.Proto)
	}
}

func TestReadinessFollowsTheDatabase(t *testing.T) {
	ts := startServer(t, serverOpts{})
	ready := func() (response, readyBody) {
		r := ts.get("/api/v1/health/ready")
		var b readyBody
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatalf("ready body %s: %v", r.body, err)
		}
		return r, b
	}
	r, b := ready()
	if r.status != 200 || b.Status != "ready" || !b.Checks["database"].OK || !b.Checks["migrations"].OK || !b.Checks["build_tools"].OK {
		t.Fatalf("ready: %d %s", r.status, r.body)
	}
	if r := ts.get("/api/v1/health/db"); r.status != 200 || !strings.Contains(string(r.body), "round_trip_ms") {
		t.Fatalf("db health: %d %s", r.status, r.body)
	}

	cluster := pg.Cluster(t)
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	restarted := false
	defer func() {
		if !restarted {
			_ = cluster.Start(context.Background())
		}
	}()
	r, b = ready()
	if r.status != 503 || b.Status != "not_ready" || b.Checks["database"].OK || b.Error == nil || b.Error.Field != "database" {
		t.Fatalf("ready with the database stopped: %d %s", r.status, r.body)
	}
	if r := ts.get("/api/v1/health/db"); r.status != 503 || r.errorCode() != "unavailable" {
		t.Fatalf("db health with the database stopped: %d %s", r.status, r.body)
	}
	if r := ts.get("/health"); r.status != 200 {
		t.Fatalf("liveness must not depend on the database: %d", r.status)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cluster.Start(ctx); err != nil {
		t.Fatal(err)
	}
	restarted = true
	deadline := time.Now().Add(20 * time.Second)
	for {
		r, _ = ready()
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still not ready 20 s after the database came back: %s", r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestReadinessNamesPendingMigrationsAndMissingTools(t *testing.T) {
	ts := startServer(t, serverOpts{noMigrate: true, args: []string{"--ready-tools", "sh,debate-no-such-tool"}})
	r := ts.get("/api/v1/health/ready")
	var b readyBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatal(err)
	}
	if r.status != 503 || !b.Checks["database"].OK || b.Checks["migrations"].OK || b.Checks["build_tools"].OK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if !strings.Contains(b.Checks["migrations"].Detail, "0001_baseline") || !strings.Contains(b.Checks["build_tools"].Detail, "debate-no-such-tool") {
		t.Fatalf("details do not say what is missing: %s", r.body)
	}
	if strings.Contains(b.Checks["build_tools"].Detail, "sh,") {
		t.Fatalf("present tool reported missing: %s", r.body)
	}
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	slow := route{"GET", "/api/v1/test/slow", groupAPI, func(w http.ResponseWriter, r *http.Request) error {
		close(started)
		select {
		case <-release:
			_, err := io.WriteString(w, "finished")
			return err
		case <-r.Context().Done():
			return r.Context().Err()
		}
	}}
	ts := startServer(t, serverOpts{extra: []route{slow}})
	type result struct {
		r   response
		err error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := ts.client.Get(ts.base + "/api/v1/test/slow")
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{r: response{status: resp.StatusCode, body: b}, err: err}
	}()
	<-started
	ts.cancel() // what SIGTERM does to `debate serve`

	// While the request is still in flight, new connections are refused.
	addr := strings.TrimPrefix(ts.base, "https://")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("new connections still accepted 5 s after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-ts.done:
		t.Fatalf("Serve returned (%v) before the in-flight request finished", err)
	default:
	}
	close(release)
	res := <-resc
	if res.err != nil || res.r.status != 200 || string(res.r.body) != "finished" {
		t.Fatalf("in-flight request: %+v", res)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after the in-flight request finished")
	}
}

func TestShutdownDeadlineCutsStragglers(t *testing.T) {
	started := make(chan struct{})
	stuck := route{"GET", "/api/v1/test/stuck", groupAPI, func(w http.ResponseWriter, r *http.Request) error {
		close(started)
		time.Sleep(3 * time.Second)
		return nil
	}}
	ts := startServer(t, serverOpts{extra: []route{stuck}, args: []string{"--shutdown-timeout", "300ms"}})
	go func() {
		if resp, err := ts.client.Get(ts.base + "/api/v1/test/stuck"); err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	begin := time.Now()
	ts.cancel()
	err := <-ts.done
	ts.done <- nil
	if err == nil || !strings.Contains(err.Error(), "cut off") {
		t.Fatalf("Serve returned %v, want a shutdown deadline error", err)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Fatalf("shutdown took %s with a 300ms deadline", d)
	}
}

func TestPanicBecomes500WithRequestID(t *testing.T) {
	ts := startServer(t, serverOpts{extra: []route{panicRoute()}})
	r := ts.get("/api/v1/test/panic")
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatal(err)
	}
	if r.status != 500 || e.Error.Code != "internal" || e.Error.RequestID == "" || e.Error.RequestID != r.header.Get("X-Request-Id") {
		t.Fatalf("%d %s (X-Request-Id %s)", r.status, r.body, r.header.Get("X-Request-Id"))
	}
	if strings.Contains(string(r.body), "secret internal detail") || strings.Contains(string(r.body), "goroutine") {
		t.Fatalf("panic details leaked to the client: %s", r.body)
	}
	logs := ts.logs.String()
	if !strings.Contains(logs, "secret internal detail") || !strings.Contains(logs, "goroutine") || !strings.Contains(logs, e.Error.RequestID) {
		t.Fatal("panic, stack or request id missing from the log")
	}
	// The server lives on.
	if r := ts.get("/health"); r.status != 200 {
		t.Fatalf("after panic: %d", r.status)
	}
}

func TestBodyLimitAndJSONErrors(t *testing.T) {
	ts := startServer(t, serverOpts{extra: []route{echoRoute()}, args: []string{"--body-limit", "1KiB"}})
	big := `{"name":"` + strings.Repeat("x", 2000) + `"}`
	if r := ts.request("POST", "/api/v1/test/echo", big); r.status != 413 || r.errorCode() != "body_too_large" {
		t.Fatalf("declared-length big body: %d %s", r.status, r.body)
	}
	// Without Content-Length (chunked) the limit holds while reading.
	req, _ := http.NewRequest("POST", ts.base+"/api/v1/test/echo", io.MultiReader(strings.NewReader(big)))
	req.ContentLength = -1
	if r := ts.do(req); r.status != 413 {
		t.Fatalf("chunked big body: %d %s", r.status, r.body)
	}
	for body, want := range map[string]string{
		`{"name":`:             "invalid_json",
		`{"name":1}`:           "invalid_field",
		`{"name":"a","x":1}`:   "invalid_request",
		`{}`:                   "invalid_field",
		`{"name":"a"} {"b":1}`: "invalid_request",
	} {
		r := ts.request("POST", "/api/v1/test/echo", body)
		if r.status != 400 || r.errorCode() != want {
			t.Errorf("body %s: %d %s, want 400 %s", body, r.status, r.body, want)
		}
	}
	r := ts.request("POST", "/api/v1/test/echo", `{}`)
	var e errorBody
	_ = json.Unmarshal(r.body, &e)
	if e.Error.Field != "name" || e.Error.Message == "" {
		t.Errorf("field error %s", r.body)
	}
	if r := ts.request("POST", "/api/v1/test/echo", `{"name":"ok"}`); r.status != 200 {
		t.Errorf("small body: %d %s", r.status, r.body)
	}
}

func TestErrorShapeEverywhere(t *testing.T) {
	ts := startServer(t, serverOpts{})
	for _, r := range []response{ts.get("/nope"), ts.request("POST", "/health", ""), ts.get("/health", "Host", "x.example")} {
		var raw map[string]map[string]any
		if err := json.Unmarshal(r.body, &raw); err != nil {
			t.Fatalf("%d: not JSON: %s", r.status, r.body)
		}
		for _, k := range []string{"code", "message", "field"} {
			if _, ok := raw["error"][k]; !ok {
				t.Errorf("%d %s: no error.%s", r.status, r.body, k)
			}
		}
		if r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%d: content type %q", r.status, r.header.Get("Content-Type"))
		}
	}
}

func TestAccessLogIsJSON(t *testing.T) {
	ts := startServer(t, serverOpts{})
	r := ts.get("/api/v1/version")
	id := r.header.Get("X-Request-Id")
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, line := range strings.Split(ts.logs.String(), "\n") {
			var v map[string]any
			if json.Unmarshal([]byte(line), &v) != nil || v["msg"] != "request" || v["request_id"] != id {
				continue
			}
			if v["status"] != float64(200) || v["path"] != "/api/v1/version" || v["method"] != "GET" {
				t.Fatalf("log line %s", line)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no access log line for %s in:\n%s", id, ts.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRequestIDFromTrustedProxyOnly(t *testing.T) {
	direct := startServer(t, serverOpts{})
	if got := direct.get("/health", "X-Request-Id", "abc-123").header.Get("X-Request-Id"); got == "abc-123" {
		t.Error("request id accepted from an untrusted client")
	}
	proxied := startServer(t, serverOpts{args: []string{"--trusted-proxies", "127.0.0.1"}})
	if got := proxied.get("/health", "X-Request-Id", "abc-123").header.Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("trusted proxy's request id replaced by %q", got)
	}
	if got := proxied.get("/health", "X-Request-Id", "bad id <script>").header.Get("X-Request-Id"); got == "" || strings.Contains(got, " ") {
		t.Errorf("malformed request id kept: %q", got)
	}
}

func TestOpenAPIServedAndComplete(t *testing.T) {
	ts := startServer(t, serverOpts{})
	r := ts.get("/api/v1/openapi.json")
	if r.status != 200 || string(r.body) != string(openAPIDoc) {
		t.Fatalf("served document differs: %d", r.status)
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPIDoc, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	registered := map[string]bool{}
	for _, rt := range ts.srv.routeTable() {
		key := strings.ToLower(rt.method) + " " + rt.path
		registered[key] = true
		if _, ok := doc.Paths[rt.path][strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s %s is not in openapi.json", rt.method, rt.path)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !registered[m+" "+p] {
				t.Errorf("openapi.json documents %s %s, which is not a route", strings.ToUpper(m), p)
			}
		}
	}
}

func TestErrorsMapToStatuses(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{&FieldError{Field: "a", Reason: "b"}, 400, "invalid_field"},
		{fmt.Errorf("x: %w", ErrNotFound), 404, "not_found"},
		{&http.MaxBytesError{Limit: 5}, 413, "body_too_large"},
		{&rateLimitError{limit: 1, retryAfter: 1}, 429, "rate_limited"},
		{fmt.Errorf("ping: %w", context.DeadlineExceeded), 503, "unavailable"},
		{errors.New("boom"), 500, "internal"},
	} {
		st, d := statusOf(c.err)
		if st != c.status || d.Code != c.code {
			t.Errorf("%v: %d %s, want %d %s", c.err, st, d.Code, c.status, c.code)
		}
	}
	if _, d := statusOf(errors.New("password=hunter2")); strings.Contains(d.Message, "hunter2") {
		t.Error("internal error text reaches the client")
	}
}
