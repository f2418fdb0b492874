package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"debate/internal/artifact"
	"debate/internal/config"
	"debate/internal/jobs"
	"debate/internal/store"
)

// These tests drive the build routes over real TLS with a real database and build
// service, but no worker: builds stay queued unless a test plays the worker's part
// through the store. Real builds are tested in cmd/debate.

func newBuildService(t *testing.T, st *store.Store, cfg *config.Serve, logger *slog.Logger) (*jobs.Service, *artifact.Store) {
	t.Helper()
	arts, err := artifact.Open(cfg.Build.ArtifactDir)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := jobs.NewService(st, arts, jobs.ServiceOptions{
		PinMaxAge: cfg.Build.PinMaxAge, QueueLimit: cfg.Builds.QueueLimit, SubmitLimit: cfg.Builds.SubmitLimit,
		StaleAfter: cfg.Build.StaleAfter, Logger: logger,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go svc.Run(ctx)
	return svc, arts
}

const testRecipe = `apiVersion: debate/v1
name: speech
base: {distribution: debian, release: bookworm, architecture: amd64}
packages: [less]
`

func recipeNamed(name string) string {
	return strings.Replace(testRecipe, "name: speech", "name: "+name, 1)
}

func decodeBuild(t *testing.T, r response) buildBody {
	t.Helper()
	var b buildBody
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("%d %s: %v", r.status, r.body, err)
	}
	return b
}

func TestSubmitValidatesEverything(t *testing.T) {
	ts := startServer(t, serverOpts{builds: true})
	bad := "apiVersion: debate/v1\nname: Bad Name\nbase: {distribution: debian, release: sid, architecture: amd64}\n" +
		"packages: [\"Nope!\"]\nusers: [{name: root}]\nextra: true\n"
	r := ts.request("POST", "/api/v1/builds", bad, "Content-Type", "application/yaml")
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatal(err)
	}
	if r.status != 422 || e.Error.Code != "invalid_recipe" || len(e.Error.Errors) < 4 || e.Error.Field == "" {
		t.Fatalf("invalid YAML recipe: %d %s", r.status, r.body)
	}
	for _, fe := range e.Error.Errors {
		if fe.Code == "" || fe.Message == "" {
			t.Errorf("problem without code or message: %+v", fe)
		}
	}
	if !strings.Contains(string(r.body), `"path":"extra"`) || !strings.Contains(string(r.body), `"path":"packages[0]"`) {
		t.Errorf("422 does not name every field: %s", r.body)
	}
	// JSON that is not even JSON is a recipe problem too (with its position).
	if r := ts.request("POST", "/api/v1/builds", `{"name":`, "Content-Type", "application/json"); r.status != 422 {
		t.Errorf("broken JSON: %d %s", r.status, r.body)
	}
	if r := ts.request("POST", "/api/v1/builds", testRecipe, "Content-Type", "text/plain"); r.status != 415 || r.errorCode() != "unsupported_media_type" {
		t.Errorf("text/plain: %d %s", r.status, r.body)
	}
	if r := ts.request("POST", "/api/v1/builds", testRecipe, "Content-Type", "application/yaml", "Origin", "https://evil.example"); r.status != 403 {
		t.Errorf("cross-origin submission: %d", r.status)
	}
	var n int
	_ = ts.store.Pool().QueryRow(context.Background(), "SELECT count(*) FROM builds").Scan(&n)
	if n != 0 {
		t.Fatalf("%d builds after invalid submissions", n)
	}
}

func TestSubmitQueueCancelAndStream(t *testing.T) {
	ts := startServer(t, serverOpts{builds: true})
	r := ts.request("POST", "/api/v1/builds", testRecipe, "Content-Type", "text/yaml")
	b := decodeBuild(t, r)
	if r.status != 202 || b.Outcome != "queued" || b.Status != "queued" || r.header.Get("Location") != "/api/v1/builds/"+b.ID {
		t.Fatalf("submit: %d %s", r.status, r.body)
	}
	if b.Queue == nil || b.Queue.Position != 1 || b.Queue.Basis == "" || b.Queue.EstimatedFinish.Sub(b.Queue.EstimatedStart) != jobs.DefaultBuildEstimate {
		t.Fatalf("queue estimate without any measured build or worker: %s", r.body)
	}
	r2 := ts.request("POST", "/api/v1/builds", testRecipe, "Content-Type", "application/yaml")
	if b2 := decodeBuild(t, r2); r2.status != 200 || b2.Outcome != "in_flight" || b2.ID != b.ID {
		t.Fatalf("identical submission: %d %s", r2.status, r2.body)
	}
	second := decodeBuild(t, ts.request("POST", "/api/v1/builds", recipeNamed("other"), "Content-Type", "application/yaml"))
	if second.Queue == nil || second.Queue.Position != 2 || !second.Queue.EstimatedStart.After(b.Queue.EstimatedStart) {
		t.Fatalf("second in the queue: %+v", second.Queue)
	}

	if g := ts.get("/api/v1/builds/" + b.ID); g.status != 200 || decodeBuild(t, g).Status != "queued" {
		t.Fatalf("status: %d %s", g.status, g.body)
	}
	for _, p := range []string{"/api/v1/builds/00000000-0000-0000-0000-000000000000", "/api/v1/builds/not-a-uuid",
		"/api/v1/builds/" + b.ID + "/artifacts/speech.iso"} {
		if g := ts.get(p); g.status != 404 || g.errorCode() != "not_found" {
			t.Errorf("GET %s: %d %s", p, g.status, g.body)
		}
	}
	if g := ts.get("/api/v1/builds/" + b.ID + "/events?after=-1"); g.status != 400 {
		t.Errorf("bad after: %d", g.status)
	}

	// A stream opened on the queued build ends when it is cancelled.
	req, _ := http.NewRequest("GET", ts.base+"/api/v1/builds/"+b.ID+"/events", nil)
	resp, err := ts.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %v", resp.StatusCode, resp.Header)
	}
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; l != "retry: 2000" {
		t.Fatalf("first line %q", l)
	}

	c := ts.request("POST", "/api/v1/builds/"+b.ID+"/cancel", "")
	if cb := decodeBuild(t, c); c.status != 200 || cb.Status != "cancelled" || cb.Error == nil || cb.Error.Code != "cancelled" {
		t.Fatalf("cancel queued: %d %s", c.status, c.body)
	}
	var got []string
	timeout := time.After(10 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			got = append(got, l)
		case <-timeout:
			t.Fatalf("stream did not end after the cancel: %q", got)
		}
	}
	all := strings.Join(got, "\n")
	if !strings.Contains(all, "event: build-end") || !strings.Contains(all, `"code":"cancelled"`) {
		t.Fatalf("stream after cancel: %q", got)
	}
	if c := ts.request("POST", "/api/v1/builds/"+b.ID+"/cancel", ""); c.status != 409 || c.errorCode() != "build_finished" {
		t.Fatalf("second cancel: %d %s", c.status, c.body)
	}
	// The cancelled build no longer blocks its submission: the same recipe queues anew.
	r3 := ts.request("POST", "/api/v1/builds", testRecipe, "Content-Type", "application/yaml")
	if b3 := decodeBuild(t, r3); r3.status != 202 || b3.ID == b.ID {
		t.Fatalf("after cancel: %d %s", r3.status, r3.body)
	}
	var state string
	if err := ts.store.Pool().QueryRow(context.Background(), "SELECT state FROM river_job WHERE id = (SELECT river_job_id FROM builds WHERE id = $1)", b.ID).Scan(&state); err != nil || state != "cancelled" {
		t.Fatalf("River job of the cancelled build: %q %v", state, err)
	}
}

func TestSubmissionBackpressure(t *testing.T) {
	ts := startServer(t, serverOpts{builds: true, args: []string{"--queue-limit", "1", "--build-submit-limit", "2"}})
	if r := ts.request("POST", "/api/v1/builds", recipeNamed("one"), "Content-Type", "application/yaml"); r.status != 202 {
		t.Fatalf("first: %d %s", r.status, r.body)
	}
	r := ts.request("POST", "/api/v1/builds", recipeNamed("two"), "Content-Type", "application/yaml")
	var e errorBody
	_ = json.Unmarshal(r.body, &e)
	ra, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != 503 || e.Error.Code != "queue_full" || e.Error.QueueLength == nil || *e.Error.QueueLength != 1 || ra < 30 {
		t.Fatalf("queue full: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
	// Joining the build in flight is still answered.
	if r := ts.request("POST", "/api/v1/builds", recipeNamed("one"), "Content-Type", "application/yaml"); r.status != 200 {
		t.Fatalf("join while full: %d %s", r.status, r.body)
	}

	lim := startServer(t, serverOpts{builds: true, args: []string{"--queue-limit", "0", "--build-submit-limit", "2"}})
	for i, name := range []string{"a", "b"} {
		if r := lim.request("POST", "/api/v1/builds", recipeNamed(name), "Content-Type", "application/yaml"); r.status != 202 {
			t.Fatalf("submission %d: %d %s", i, r.status, r.body)
		}
	}
	r = lim.request("POST", "/api/v1/builds", recipeNamed("c"), "Content-Type", "application/yaml")
	ra, _ = strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != 429 || r.errorCode() != "build_limit" || ra < 3000 || ra > 3600 {
		t.Fatalf("over the hourly limit: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
	}
}

// Downloads, played through the store the way a worker publishes: Range (single and
// multiple), If-None-Match, If-Range, HEAD, 416; the log as text.
func TestArtifactDownloadAndLog(t *testing.T) {
	ts := startServer(t, serverOpts{builds: true})
	b := decodeBuild(t, ts.request("POST", "/api/v1/builds", testRecipe, "Content-Type", "application/yaml"))
	ctx := context.Background()
	if _, _, err := ts.store.ClaimBuild(ctx, b.ID, "w", 1); err != nil {
		t.Fatal(err)
	}
	events := []store.Event{
		{Seq: 1, Type: "build-start", Data: json.RawMessage(`{"seq":1,"time":"2025-01-01T00:00:00Z","type":"build-start","message":"delivering"}`)},
		{Seq: 2, Type: "log", Data: json.RawMessage(`{"seq":2,"time":"2025-01-01T00:00:01.5Z","type":"log","stage":"resolve","message":"Get:1 http://deb.debian.org"}`)},
	}
	if err := ts.store.AppendEvents(ctx, b.ID, "w", events, nil); err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 3<<20+17)
	for i := range content {
		content[i] = byte(i * 7)
	}
	src := filepath.Join(t.TempDir(), "speech.iso")
	if err := os.WriteFile(src, content, 0o644); err != nil {
		t.Fatal(err)
	}
	digest, size, err := ts.arts.Put(src, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := ts.store.FinishSucceeded(ctx, b.ID, "w", strings.Repeat("c", 64), "", []store.Artifact{
		{Name: "speech.iso", SHA256: digest, Size: size, ContentType: "application/x-iso9660-image"}}, store.Final{}); err != nil {
		t.Fatal(err)
	}
	url := "/api/v1/builds/" + b.ID + "/artifacts/speech.iso"
	whole := ts.get(url)
	if whole.status != 200 || string(whole.body) != string(content) || whole.header.Get("Content-Length") != strconv.Itoa(len(content)) ||
		whole.header.Get("ETag") != `"`+digest+`"` || whole.header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("whole: %d, %d bytes, %v", whole.status, len(whole.body), whole.header)
	}
	part := ts.get(url, "Range", "bytes=-100")
	if part.status != 206 || string(part.body) != string(content[len(content)-100:]) {
		t.Fatalf("suffix range: %d %d bytes", part.status, len(part.body))
	}
	multi := ts.get(url, "Range", "bytes=0-9,100-109")
	if multi.status != 206 || !strings.HasPrefix(multi.header.Get("Content-Type"), "multipart/byteranges") {
		t.Fatalf("multiple ranges: %d %v", multi.status, multi.header)
	}
	if r := ts.get(url, "If-None-Match", `"`+digest+`"`); r.status != 304 {
		t.Errorf("If-None-Match: %d", r.status)
	}
	if r := ts.get(url, "Range", "bytes=0-9", "If-Range", `"`+strings.Repeat("0", 64)+`"`); r.status != 200 || len(r.body) != len(content) {
		t.Errorf("If-Range with another ETag must send it all: %d", r.status)
	}
	if r := ts.get(url, "Range", "bytes=99999999-"); r.status != 416 {
		t.Errorf("unsatisfiable range: %d", r.status)
	}
	if r := ts.request("HEAD", url, ""); r.status != 200 || len(r.body) != 0 || r.header.Get("Content-Length") != strconv.Itoa(len(content)) {
		t.Errorf("HEAD: %d %v", r.status, r.header)
	}
	st := decodeBuild(t, ts.get("/api/v1/builds/"+b.ID))
	if st.Status != "succeeded" || len(st.Artifacts) != 1 || st.Artifacts[0].URL != url || st.Artifacts[0].SHA256 != digest {
		t.Fatalf("succeeded status: %+v", st)
	}
	lg := ts.get("/api/v1/builds/" + b.ID + "/log")
	if lg.status != 200 || string(lg.body) != "[    0.0s] == build-start: delivering\n[    1.5s] Get:1 http://deb.debian.org\n" {
		t.Fatalf("log: %d %q", lg.status, lg.body)
	}
	if _, err := ts.store.Pool().Exec(ctx, "UPDATE builds SET logs_removed_at = now() WHERE id = $1", b.ID); err != nil {
		t.Fatal(err)
	}
	if lg := ts.get("/api/v1/builds/" + b.ID + "/log"); lg.status != 410 || lg.errorCode() != "gone" {
		t.Fatalf("removed log: %d %s", lg.status, lg.body)
	}
}

func TestMetricsExposition(t *testing.T) {
	ts := startServer(t, serverOpts{builds: true})
	ts.request("POST", "/api/v1/builds", testRecipe, "Content-Type", "application/yaml")
	ts.request("POST", "/api/v1/builds", "name: x", "Content-Type", "application/yaml")
	ts.get("/nope")
	rec := httptest.NewRecorder()
	ts.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	text := string(body)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("metrics: %d %v", rec.Code, rec.Header())
	}
	for _, want := range []string{
		`debate_http_requests_total{method="POST",route="/api/v1/builds",status="202"} 1`,
		`debate_http_requests_total{method="POST",route="/api/v1/builds",status="422"} 1`,
		`debate_http_requests_total{method="",route="unmatched",status="404"} 1`,
		`debate_http_request_duration_seconds_count{method="POST",route="/api/v1/builds"} 2`,
		`debate_builds{status="queued"} 1`,
		`debate_build_queue_length 1`,
		`debate_build_submissions_total{outcome="queued"} 1`,
		`debate_build_duration_seconds_bucket{le="+Inf"} 0`,
		`debate_build_metrics_up 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("missing %q", want)
		}
	}
	// Every sample line is NAME{labels} VALUE or NAME VALUE, every family announced.
	declared := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			declared[strings.Fields(line)[2]] = true
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !declared[name] && !declared[base] {
			t.Errorf("sample of undeclared family: %s", line)
		}
		if _, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64); err != nil {
			t.Errorf("bad value: %s", line)
		}
	}
	// Metrics are not on the public listener.
	if r := ts.get("/metrics"); r.status != 404 {
		t.Errorf("/metrics on the public listener: %d", r.status)
	}
}
