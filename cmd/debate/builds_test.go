package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"debate/internal/builder"
	"debate/internal/jobs"
	"debate/internal/pgtest"
	"debate/internal/recipe"
	"debate/internal/sandbox"
	"debate/internal/store"
	"debate/internal/testenv"
)

// The build service end to end: a real `debate serve` over HTTPS, real `debate worker`
// processes (this test binary re-executed), a real PostgreSQL and the real builder.
//
// The minimal example is built twice in the whole package: once directly with
// builder.Build (the reference), once through the service — by a worker that is killed
// in the middle of it and a second worker that takes the build over. Everything else
// (cache hits, duplicate submissions, cancellation) rides on those two builds or stops
// early, so the package adds a few minutes to `make test`, not more.

func requireBuilds(t *testing.T) {
	t.Helper()
	_, pgErr := pgtest.FindBinDir()
	testenv.Need(t, "the build service", sandbox.Available(), testenv.Missing(builder.MissingTools()), pgErr)
}

func testPackageCache(t *testing.T) string { return testenv.CacheDir(t) }

// service is a running server with its database, directories and client.
type service struct {
	t        *testing.T
	dbURL    string
	st       *store.Store
	base     string
	metrics  string
	client   *http.Client // with a timeout, for ordinary requests
	streamer *http.Client // without one, for event streams and downloads
	arts     string
	cache    string
	logs     *testenv.Buffer
}

func startService(t *testing.T) *service {
	t.Helper()
	cluster := pgtest.StartForTest(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := cluster.CreateDatabase(ctx, "builds")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DATABASE_URL", url)
	state := t.TempDir()
	s := &service{t: t, dbURL: url, arts: filepath.Join(state, "artifacts"), cache: testPackageCache(t)}
	port, mport := freePort(t), freePort(t)
	s.base = "https://127.0.0.1:" + strconv.Itoa(port)
	s.metrics = "http://127.0.0.1:" + strconv.Itoa(mport) + "/metrics"
	srv := startServe(t,
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--http-listen", "", "--tls-self-signed",
		"--state-dir", state, "--ready-tools", "sh", "--migrate-on-start",
		"--metrics-listen", "127.0.0.1:"+strconv.Itoa(mport),
		// Streams and downloads outlive the write timeout only by extending it.
		"--write-timeout", "20s",
		"--rate-limit", "0", "--stale-after", "6s", "--heartbeat-interval", "1s",
	)
	s.logs = srv.logs
	t.Cleanup(func() {
		if code := srv.stopServe(60 * time.Second); code != 0 {
			t.Errorf("serve exit %d (-1: did not stop)", code)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	tr := trustServer(t, state, 30*time.Second, s.logs)
	s.client = &http.Client{Timeout: 30 * time.Second, Transport: tr}
	s.streamer = &http.Client{Transport: tr}
	for {
		if r, err := s.client.Get(s.base + "/api/v1/health/ready"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.st, err = store.Open(context.Background(), url, store.Options{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.st.Close)
	return s
}

type answer struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

func (a answer) build(t *testing.T) buildJSON {
	t.Helper()
	var b buildJSON
	if err := json.Unmarshal(a.body, &b); err != nil {
		t.Fatalf("status %d body %s: %v", a.status, a.body, err)
	}
	return b
}

// buildJSON is what the tests read of a build answer.
type buildJSON struct {
	ID              string `json:"id"`
	Status          string `json:"status"`
	Outcome         string `json:"outcome"`
	BuildKey        string `json:"build_key"`
	Attempt         int    `json:"attempt"`
	CancelRequested bool   `json:"cancel_requested"`
	Queue           *struct {
		Position        int       `json:"position"`
		EstimatedStart  time.Time `json:"estimated_start"`
		EstimatedFinish time.Time `json:"estimated_finish"`
	} `json:"queue"`
	Stages []struct {
		Name    string   `json:"name"`
		Seconds *float64 `json:"seconds"`
		State   string   `json:"state"`
	} `json:"stages"`
	Error *struct {
		Code  string `json:"code"`
		Stage string `json:"stage"`
	} `json:"error"`
	Artifacts []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
		URL    string `json:"url"`
	} `json:"artifacts"`
}

func (s *service) do(method, path, contentType string, body []byte, headers ...string) answer {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, bytes.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b, took: time.Since(start)}
}

func (s *service) get(path string) buildJSON {
	s.t.Helper()
	a := s.do("GET", path, "", nil)
	if a.status != 200 {
		s.t.Fatalf("GET %s: %d %s", path, a.status, a.body)
	}
	return a.build(s.t)
}

// waitStatus polls a build until its status is want.
func (s *service) waitStatus(id, want string, within time.Duration) buildJSON {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		b := s.get("/api/v1/builds/" + id)
		if b.Status == want {
			return b
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("build %s still %s after %s (want %s)\n%s", id, b.Status, within, want, s.logs.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// worker is a `debate worker` process.
type worker struct {
	cmd    *exec.Cmd
	log    *testenv.Buffer
	exited chan struct{} // closed once the process has been waited for
	err    error         // its exit, once exited is closed
}

func (w *worker) running() bool {
	select {
	case <-w.exited:
		return false
	default:
		return true
	}
}

func (s *service) startWorker(t *testing.T) *worker {
	t.Helper()
	cmd := exec.Command(os.Args[0], "worker", "--concurrency", "1", "--artifact-dir", s.arts, "--cache-dir", s.cache,
		"--heartbeat-interval", "1s", "--stale-after", "6s", "--shutdown-timeout", "5s", "--log-format", "text")
	cmd.Env = append(os.Environ(), "DEBATE_TEST_EXEC=1", "DATABASE_URL="+s.dbURL)
	w := &worker{cmd: cmd, log: &testenv.Buffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = w.log, w.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w.err = cmd.Wait()
		close(w.exited)
	}()
	t.Cleanup(func() {
		if w.running() {
			_ = w.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-w.exited:
			case <-time.After(30 * time.Second):
				_ = w.cmd.Process.Kill()
				<-w.exited
			}
		}
		if t.Failed() {
			t.Logf("worker %d log:\n%s", cmd.Process.Pid, w.log.String())
		}
	})
	return w
}

// sseEvent is one server-sent event.
type sseEvent struct {
	id   int
	typ  string
	data []byte
}

// follow reads a build's event stream until it ends.
func (s *service) follow(id string) <-chan sseEvent {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+"/api/v1/builds/"+id+"/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := s.streamer.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		s.t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan sseEvent, 4096)
	go func() {
		defer close(ch)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 1<<16), 4<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.typ != "" {
					ch <- ev
				}
				ev = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				ev.id, _ = strconv.Atoi(line[4:])
			case strings.HasPrefix(line, "event: "):
				ev.typ = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = append(ev.data, line[6:]...)
			}
		}
	}()
	return ch
}

// waitEvent reads events until one satisfies ok, returning everything read.
func waitEvent(t *testing.T, ch <-chan sseEvent, within time.Duration, ok func(builder.Event) bool) []sseEvent {
	t.Helper()
	var seen []sseEvent
	timeout := time.After(within)
	for {
		select {
		case e, open := <-ch:
			if !open {
				t.Fatalf("event stream ended before the awaited event (%d events read)", len(seen))
			}
			seen = append(seen, e)
			var be builder.Event
			if err := json.Unmarshal(e.data, &be); err != nil {
				t.Fatalf("event %d data %s: %v", e.id, e.data, err)
			}
			if ok(be) {
				return seen
			}
		case <-timeout:
			t.Fatalf("awaited event not seen within %s (%d events read)", within, len(seen))
		}
	}
}

// proc identifies a process across pid reuse.
type proc struct {
	pid   int
	comm  string
	start string
}

// procStat reads a process's parent, name and start time.
func procStat(pid int) (ppid int, p proc, ok bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, proc{}, false
	}
	s := string(data)
	open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || close < open {
		return 0, proc{}, false
	}
	fields := strings.Fields(s[close+1:])
	if len(fields) < 20 {
		return 0, proc{}, false
	}
	ppid, _ = strconv.Atoi(fields[1])
	return ppid, proc{pid: pid, comm: s[open+1 : close], start: fields[19]}, fields[0] != "Z"
}

// descendants lists the living processes below root.
func descendants(root int) []proc {
	children := map[int][]proc{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, p, ok := procStat(pid); ok {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, c := range children[pid] {
			out = append(out, c)
			queue = append(queue, c.pid)
		}
	}
	return out
}

func (p proc) alive() bool {
	_, q, ok := procStat(p.pid)
	return ok && q.start == p.start
}

func names(ps []proc) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.comm)
	}
	return out
}

// waitSandbox waits until the worker runs a sandbox (bwrap) with a process named comm
// inside, and returns the worker's process tree.
func waitSandbox(t *testing.T, w *worker, comm string, within time.Duration) []proc {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		tree := descendants(w.cmd.Process.Pid)
		bwraps, hasComm := 0, false
		for _, p := range tree {
			if p.comm == "bwrap" {
				bwraps++
			}
			hasComm = hasComm || p.comm == comm
		}
		if bwraps >= 2 && hasComm { // the outer bwrap and the sandbox's init
			return tree
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sandbox running %s under the worker within %s; tree: %v\n%s", comm, within, names(tree), w.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitGone waits until none of the processes lives.
func waitGone(t *testing.T, what string, ps []proc, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var left []proc
		for _, p := range ps {
			if p.alive() {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: processes still alive after %s: %v", what, within, names(left))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestBuildServiceEndToEnd(t *testing.T) {
	requireBuilds(t)
	s := startService(t)
	minimalYAML, err := os.ReadFile("../../examples/minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}

	// An invalid recipe: every problem at once, with its field path.
	bad := []byte("apiVersion: debate/v1\nname: Bad Name\nbase: {distribution: debian, release: bookworm, architecture: amd64}\n" +
		"packages: [\"no such!\"]\nhostname: -x\nfiles: [{path: relative, content: x}]\nbogus: 1\n")
	a := s.do("POST", "/api/v1/builds", "application/yaml", bad)
	var e struct {
		Error struct {
			Code   string              `json:"code"`
			Errors []recipe.FieldError `json:"errors"`
		} `json:"error"`
	}
	if err := json.Unmarshal(a.body, &e); err != nil || a.status != 422 || e.Error.Code != "invalid_recipe" {
		t.Fatalf("invalid recipe: %d %s", a.status, a.body)
	}
	paths := map[string]bool{}
	for _, fe := range e.Error.Errors {
		paths[fe.Path] = fe.Message != "" && fe.Code != ""
	}
	for _, p := range []string{"name", "packages[0]", "hostname", "files[0].path", "bogus"} {
		if !paths[p] {
			t.Errorf("422 does not list %s with a code and message: %s", p, a.body)
		}
	}
	if a := s.do("POST", "/api/v1/builds", "text/html", minimalYAML); a.status != 415 {
		t.Errorf("text/html recipe: %d %s", a.status, a.body)
	}

	// The service build, by a worker killed in the middle of it.
	w1 := s.startWorker(t)
	a = s.do("POST", "/api/v1/builds", "application/yaml", minimalYAML)
	b := a.build(t)
	if a.status != 202 || b.Outcome != "queued" || b.Status != "queued" || a.header.Get("Location") != "/api/v1/builds/"+b.ID {
		t.Fatalf("submission: %d %s (Location %q)", a.status, a.body, a.header.Get("Location"))
	}
	if b.Queue == nil || b.Queue.Position != 1 || !b.Queue.EstimatedFinish.After(b.Queue.EstimatedStart) {
		t.Fatalf("queue estimate: %s", a.body)
	}
	id := b.ID
	events := s.follow(id)
	waitEvent(t, events, 3*time.Minute, func(e builder.Event) bool {
		return e.Type == builder.EventStageStart && e.Stage == builder.StageBootstrap
	})
	tree := waitSandbox(t, w1, "mmdebstrap", time.Minute)
	if err := w1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-w1.exited
	// The tree holds both bwrap processes of the sandbox: the inner one is the PID 1 of
	// the sandbox's PID namespace, so with it gone nothing inside survives. (Processes are
	// followed by pid and start time, not by name: other builds may run on this machine.)
	waitGone(t, "killed worker's sandbox", tree, 15*time.Second)
	if b := s.get("/api/v1/builds/" + id); b.Status != "running" || len(b.Artifacts) != 0 {
		t.Fatalf("after the kill: %+v", b)
	}
	if files, _ := filepath.Glob(filepath.Join(s.arts, "sha256", "*", "*")); len(files) > 0 {
		t.Fatalf("the killed build left artifacts: %v", files)
	}

	// The reference build runs now, beside the service build's second attempt: the
	// package cache is warm since the first attempt got past its download.
	type refResult struct {
		res *builder.Result
		err error
	}
	refc := make(chan refResult, 1)
	go func() {
		r, err := recipe.Parse(minimalYAML, recipe.YAML)
		if err != nil {
			refc <- refResult{err: err}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
		defer cancel()
		res, err := builder.Build(ctx, builder.Options{Recipe: r, OutDir: t.TempDir(), CacheDir: s.cache})
		refc <- refResult{res, err}
	}()

	w2 := s.startWorker(t)
	restarted := false
	seen := waitEvent(t, events, 25*time.Minute, func(e builder.Event) bool {
		if e.Type == builder.EventWarning && strings.Contains(e.Message, "restarted on worker") {
			restarted = true
		}
		return e.Type == builder.EventBuildEnd
	})
	if !restarted {
		t.Error("the stream did not say the build restarted on another worker")
	}
	last := seen[len(seen)-1]
	var end builder.Event
	_ = json.Unmarshal(last.data, &end)
	if end.Error != nil || end.Result == nil || end.Result.ISO.SHA256 == "" {
		t.Fatalf("build-end: %s", last.data)
	}
	if _, open := <-events; open {
		t.Error("the event stream did not end after build-end")
	}
	// The outcome is stored with the last events: whoever saw build-end sees it.
	b = s.get("/api/v1/builds/" + id)
	if b.Status != "succeeded" || b.Attempt != 2 || len(b.Artifacts) != 3 || b.BuildKey == "" {
		t.Fatalf("succeeded build: %+v", b)
	}
	for _, st := range b.Stages {
		if st.State != "done" || st.Seconds == nil {
			t.Errorf("stage %s: %s", st.Name, st.State)
		}
	}
	var iso struct {
		Name, SHA256, URL string
		Size              int64
	}
	for _, art := range b.Artifacts {
		if strings.HasSuffix(art.Name, ".iso") {
			iso.Name, iso.SHA256, iso.URL, iso.Size = art.Name, art.SHA256, art.URL, art.Size
		}
	}
	if iso.SHA256 != end.Result.ISO.SHA256 {
		t.Fatalf("ISO sha256: status %s, build-end %s", iso.SHA256, end.Result.ISO.SHA256)
	}

	// Resuming the finished stream from an id replays only what followed it.
	replay := s.do("GET", "/api/v1/builds/"+id+"/events", "", nil, "Last-Event-ID", strconv.Itoa(last.id-1))
	if replay.status != 200 || strings.Count(string(replay.body), "\nevent: ") != 1 || !strings.Contains(string(replay.body), "event: build-end") {
		t.Errorf("resume from %d: %s", last.id-1, replay.body)
	}

	// Downloads: a range, then the whole file, then a conditional request.
	a = s.do("GET", iso.URL, "", nil, "Range", "bytes=32768-33791")
	if a.status != 206 || len(a.body) != 1024 || a.header.Get("Content-Range") != fmt.Sprintf("bytes 32768-33791/%d", iso.Size) ||
		a.header.Get("ETag") != `"`+iso.SHA256+`"` {
		t.Fatalf("range request: %d, %d bytes, headers %v", a.status, len(a.body), a.header)
	}
	head := a.body
	resp, err := s.streamer.Get(s.base + iso.URL)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	var first bytes.Buffer
	n, err := io.Copy(io.MultiWriter(h, &limitedBuffer{&first, 33792}), resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || n != iso.Size || resp.ContentLength != iso.Size {
		t.Fatalf("download: %d, %d of %d bytes (Content-Length %d): %v", resp.StatusCode, n, iso.Size, resp.ContentLength, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != iso.SHA256 {
		t.Fatalf("downloaded ISO sha256 %s, recorded %s", got, iso.SHA256)
	}
	if !bytes.Equal(first.Bytes()[32768:], head) {
		t.Error("the range differs from the same bytes of the whole download")
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename=minimal.iso` || resp.Header.Get("Content-Type") != "application/x-iso9660-image" {
		t.Errorf("download headers: %v", resp.Header)
	}
	if a := s.do("GET", iso.URL, "", nil, "If-None-Match", `"`+iso.SHA256+`"`); a.status != 304 {
		t.Errorf("If-None-Match: %d", a.status)
	}
	if a := s.do("GET", "/api/v1/builds/"+id+"/log", "", nil); a.status != 200 || !strings.Contains(string(a.body), "== stage bootstrap") ||
		!strings.Contains(string(a.body), "restarted on worker") || bytes.Count(a.body, []byte("\n")) < 100 {
		t.Errorf("log: %d, %d bytes", a.status, len(a.body))
	}

	// The same recipe again (as JSON this time): a cache hit, answered at once.
	r, _ := recipe.Parse(minimalYAML, recipe.YAML)
	asJSON, _ := json.Marshal(r)
	a = s.do("POST", "/api/v1/builds", "application/json", asJSON)
	hit := a.build(t)
	if a.status != 200 || hit.Outcome != "cache_hit" || hit.ID != id || len(hit.Artifacts) != 3 {
		t.Fatalf("second submission: %d %s", a.status, a.body)
	}
	t.Logf("cache hit answered in %s", a.took)
	if a.took > time.Second {
		t.Errorf("cache hit took %s", a.took)
	}

	ref := <-refc
	if ref.err != nil {
		t.Fatalf("reference build: %v", ref.err)
	}
	if ref.res.ISO.SHA256 != iso.SHA256 || ref.res.BuildKey != b.BuildKey {
		t.Fatalf("service ISO %s (key %s) differs from builder.Build's %s (key %s)", iso.SHA256, b.BuildKey, ref.res.ISO.SHA256, ref.res.BuildKey)
	}

	// Two identical submissions of a new recipe at once make one build; cancelling it
	// while it runs kills its sandbox.
	variant := bytes.Replace(minimalYAML, []byte("hostname: minimal"), []byte("hostname: variant"), 1)
	var wg sync.WaitGroup
	answers := make([]answer, 2)
	for i := range answers {
		wg.Go(func() { answers[i] = s.do("POST", "/api/v1/builds", "application/yaml", variant) })
	}
	wg.Wait()
	v0, v1 := answers[0].build(t), answers[1].build(t)
	if v0.ID != v1.ID || v0.ID == id {
		t.Fatalf("concurrent identical submissions: %s and %s", answers[0].body, answers[1].body)
	}
	outcomes := []string{v0.Outcome, v1.Outcome}
	if !(outcomes[0] == "queued" && outcomes[1] == "in_flight" || outcomes[0] == "in_flight" && outcomes[1] == "queued") {
		t.Fatalf("outcomes %v; want one queued and one in_flight", outcomes)
	}
	var builds int
	if err := s.st.Pool().QueryRow(context.Background(), "SELECT count(*) FROM builds WHERE id <> $1", id).Scan(&builds); err != nil || builds != 1 {
		t.Fatalf("%d builds for two identical submissions: %v", builds, err)
	}
	vevents := s.follow(v0.ID)
	waitEvent(t, vevents, 3*time.Minute, func(e builder.Event) bool {
		return e.Type == builder.EventStageStart && e.Stage == builder.StageBootstrap
	})
	vtree := waitSandbox(t, w2, "mmdebstrap", time.Minute)

	// Meanwhile a third recipe waits in the queue (one build slot): cancelled at once.
	queued := bytes.Replace(minimalYAML, []byte("hostname: minimal"), []byte("hostname: waiting"), 1)
	a = s.do("POST", "/api/v1/builds", "application/yaml", queued)
	q := a.build(t)
	if a.status != 202 || q.Queue == nil || q.Queue.Position != 1 || !q.Queue.EstimatedStart.After(time.Now()) {
		t.Fatalf("queued behind a running build: %d %s", a.status, a.body)
	}
	a = s.do("POST", "/api/v1/builds/"+q.ID+"/cancel", "", nil)
	if a.status != 200 || a.build(t).Status != "cancelled" {
		t.Fatalf("cancel a queued build: %d %s", a.status, a.body)
	}
	if a := s.do("POST", "/api/v1/builds/"+q.ID+"/cancel", "", nil); a.status != 409 {
		t.Fatalf("cancel a cancelled build: %d %s", a.status, a.body)
	}

	a = s.do("POST", "/api/v1/builds/"+v0.ID+"/cancel", "", nil)
	if a.status != 202 || !a.build(t).CancelRequested {
		t.Fatalf("cancel the running build: %d %s", a.status, a.body)
	}
	cancelled := time.Now()
	vb := s.waitStatus(v0.ID, "cancelled", time.Minute)
	waitGone(t, "cancelled build's sandbox", vtree, 15*time.Second)
	t.Logf("cancelled build ended %s after the request; its sandbox is gone", time.Since(cancelled).Round(time.Millisecond))
	if vb.Error == nil || vb.Error.Code != "cancelled" {
		t.Fatalf("cancelled build: %+v", vb)
	}
	vseen := waitEvent(t, vevents, time.Minute, func(e builder.Event) bool { return e.Type == builder.EventBuildEnd })
	var vend builder.Event
	_ = json.Unmarshal(vseen[len(vseen)-1].data, &vend)
	if vend.Error == nil || vend.Error.Code != "cancelled" {
		t.Fatalf("cancelled build's build-end: %s", vseen[len(vseen)-1].data)
	}

	// Pins past their age give no instant hit; the periodic refresh (run here at once)
	// resolves the scope again, and the hit is instant again.
	if _, err := s.st.Pool().Exec(context.Background(), "UPDATE build_pins SET resolved_at = now() - interval '1 hour'"); err != nil {
		t.Fatal(err)
	}
	rc, err := river.NewClient(riverpgxv5.New(s.st.Pool()), &river.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Insert(context.Background(), jobs.PinRefreshArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	refreshed := time.Now()
	for {
		var fresh bool
		if err := s.st.Pool().QueryRow(context.Background(), "SELECT bool_or(resolved_at > now() - interval '5 minutes') FROM build_pins").Scan(&fresh); err != nil {
			t.Fatal(err)
		}
		if fresh {
			break
		}
		if time.Since(refreshed) > 2*time.Minute {
			t.Fatalf("pins not refreshed within 2 minutes\n%s", w2.log.String())
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("pins refreshed in %s", time.Since(refreshed).Round(time.Millisecond))
	hitsWant := 2
	a = s.do("POST", "/api/v1/builds", "application/yaml", minimalYAML)
	if after := a.build(t); a.status != 200 || after.Outcome != "cache_hit" {
		// Unless the archive published a new Release file in these minutes: then the
		// refreshed pins are other inputs, and a new build is right.
		var inputs int
		_ = s.st.Pool().QueryRow(context.Background(), "SELECT count(DISTINCT inputs_hash) FROM build_pins").Scan(&inputs)
		if after.Outcome != "queued" || inputs < 2 {
			t.Fatalf("after the pin refresh: %d %s", a.status, a.body)
		}
		t.Logf("the archive moved during the test: a new build was queued; cancelling it")
		s.do("POST", "/api/v1/builds/"+after.ID+"/cancel", "", nil)
		s.waitStatus(after.ID, "cancelled", time.Minute)
		hitsWant = 1
	}

	// The worker still works: it stops cleanly on SIGTERM.
	if !w2.running() {
		t.Fatalf("worker exited: %v\n%s", w2.err, w2.log.String())
	}
	_ = w2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w2.exited:
		if w2.err != nil {
			t.Errorf("worker after SIGTERM: %v\n%s", w2.err, w2.log.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not stop on SIGTERM")
	}

	// Metrics: on the private listener, covering every worker through the database.
	resp, err = http.Get(s.metrics)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`debate_builds{status="succeeded"} 1`,
		fmt.Sprintf(`debate_builds{status="cancelled"} %d`, 4-hitsWant),
		fmt.Sprintf(`debate_build_cache_hits_total{where="submit"} %d`, hitsWant),
		`debate_build_submissions_total{outcome="in_flight"} 1`,
		`debate_http_requests_total{method="POST",route="/api/v1/builds",status="422"} 1`,
		`debate_build_stage_duration_seconds_count{stage="squashfs"} 1`,
		`debate_build_duration_seconds_count 1`,
		`debate_build_queue_length 0`,
		`debate_build_metrics_up 1`,
	} {
		if !strings.Contains(string(metrics), want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", metrics)
	}
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
