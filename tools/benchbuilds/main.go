// Command benchbuilds measures the build service: `make bench-builds` (a benchmark, not a
// test; it needs root and the build tools, like `debate build`).
//
// It starts a private PostgreSQL cluster and `debate serve --workers 1` over TLS as its
// own process, delivers examples/minimal.yaml through the API and measures:
//
//   - the time from POST to the answer and to the first event of the build's stream;
//   - the latency of cache hits (the same recipe again), one request at a time and with
//     concurrent clients: p50, p95, p99 (target: p99 under 20 ms; a hit never touches
//     the artifact, so the ISO's size does not matter);
//   - the download throughput of the ISO over HTTPS, and over plain HTTP from a second
//     server without TLS (where the kernel's sendfile applies), next to the speed of
//     reading the same file straight from the disk in the same run — each cold (page
//     cache dropped first) and warm.
//
// It prints a Markdown report for docs/benchmarks.md.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"debate/internal/pgtest"
)

type options struct {
	server, recipe, cacheDir string
	hits, conns              int
	loadFor                  time.Duration
	downloads                int
	keep                     bool
}

func main() {
	var o options
	flag.StringVar(&o.server, "server", "bin/debate", "the debate binary")
	flag.StringVar(&o.recipe, "recipe", "examples/minimal.yaml", "the recipe to deliver")
	flag.StringVar(&o.cacheDir, "cache-dir", ".cache/packages", "package cache for the worker (warm: the build downloads nothing)")
	flag.IntVar(&o.hits, "hits", 3000, "sequential cache-hit requests measured")
	flag.IntVar(&o.conns, "c", 8, "concurrent clients for the cache-hit load")
	flag.DurationVar(&o.loadFor, "d", 10*time.Second, "duration of the concurrent cache-hit load")
	flag.IntVar(&o.downloads, "downloads", 3, "downloads measured per mode (the best is reported)")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (server logs)")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "benchbuilds: %v\n", err)
		os.Exit(1)
	}
}

type server struct {
	cmd  *exec.Cmd
	base string
	log  *os.File
}

func startServer(bin, work, name string, args ...string) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	logf, err := os.Create(filepath.Join(work, name+".log"))
	if err != nil {
		return nil, err
	}
	all := append([]string{"serve", "--listen", addr, "--http-listen", "", "--metrics-listen", "",
		"--ready-tools", "sh", "--rate-limit", "0", "--build-submit-limit", "0", "--queue-limit", "0",
		"--log-level", "warn"}, args...)
	cmd := exec.Command(bin, all...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = os.Environ()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	scheme := "https://"
	if !slices.Contains(args, "--tls-self-signed") {
		scheme = "http://"
	}
	return &server{cmd: cmd, base: scheme + addr, log: logf}, nil
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
	}
	s.log.Close()
}

func waitReady(c *http.Client, base string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := c.Get(base + "/api/v1/health/ready"); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within 60 s", base)
}

type buildAnswer struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Outcome   string `json:"outcome"`
	Artifacts []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
		URL    string `json:"url"`
	} `json:"artifacts"`
}

func post(c *http.Client, base string, body []byte) (buildAnswer, int, error) {
	var b buildAnswer
	resp, err := c.Post(base+"/api/v1/builds", "application/yaml", bytes.NewReader(body))
	if err != nil {
		return b, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return b, resp.StatusCode, err
	}
	if resp.StatusCode != 200 && resp.StatusCode != 202 {
		return b, resp.StatusCode, fmt.Errorf("POST: %d %s", resp.StatusCode, data)
	}
	return b, resp.StatusCode, json.Unmarshal(data, &b)
}

func run(o options) error {
	if os.Geteuid() != 0 {
		return errors.New("run as root: the server's worker builds in a sandbox")
	}
	bin, err := filepath.Abs(o.server)
	if err != nil {
		return err
	}
	recipeDoc, err := os.ReadFile(o.recipe)
	if err != nil {
		return err
	}
	cache, err := filepath.Abs(o.cacheDir)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("/var/tmp", "debate-bench-builds-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(work)
	} else {
		fmt.Fprintf(os.Stderr, "work directory: %s\n", work)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"max_connections": "100"}})
	if err != nil {
		return err
	}
	defer cluster.Close()
	dbURL, err := cluster.CreateDatabase(ctx, "bench")
	if err != nil {
		return err
	}
	os.Setenv("DATABASE_URL", dbURL)
	state := filepath.Join(work, "state")
	arts := filepath.Join(state, "artifacts")

	srv, err := startServer(bin, work, "serve", "--tls-self-signed", "--state-dir", state, "--migrate-on-start",
		"--workers", "1", "--cache-dir", cache, "--work-dir", filepath.Join(work, "builds"))
	if err != nil {
		return err
	}
	defer srv.stop()
	var pool *x509.CertPool
	deadline := time.Now().Add(30 * time.Second)
	for pool == nil {
		if pem, err := os.ReadFile(filepath.Join(state, "ca", "ca.pem")); err == nil {
			pool = x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("server wrote no CA: %v (log: %s)", err, srv.log.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
	newClient := func(timeout time.Duration) *http.Client {
		return &http.Client{Timeout: timeout, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}, MaxIdleConnsPerHost: 1,
			DisableCompression: true}}
	}
	client := newClient(30 * time.Second)
	if err := waitReady(client, srv.base); err != nil {
		return err
	}

	report := &strings.Builder{}
	host, _ := os.Hostname()
	fmt.Fprintf(report, "## Build service\n\n`make bench-builds` on %s (%d CPUs), %s: `debate serve --workers 1` over TLS\n"+
		"(self-signed, HTTP/1.1 keep-alive) on a private PostgreSQL cluster (durability off, as in tests),\n"+
		"client in this process on the same machine; recipe %s, package cache warm.\n\n",
		host, runtime.NumCPU(), time.Now().UTC().Format("2006-01-02"), o.recipe)

	// 1. Submission: the answer, then the first event of the stream.
	t0 := time.Now()
	b, status, err := post(client, srv.base, recipeDoc)
	if err != nil {
		return err
	}
	answered := time.Since(t0)
	if status != 202 {
		return fmt.Errorf("first submission: status %d, outcome %s (want a new build)", status, b.Outcome)
	}
	req, _ := http.NewRequest("GET", srv.base+"/api/v1/builds/"+b.ID+"/events", nil)
	resp, err := newClient(0).Do(req)
	if err != nil {
		return err
	}
	var firstEvent, buildTook time.Duration
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<16), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "event: ") && firstEvent == 0 {
			firstEvent = time.Since(t0)
			fmt.Fprintf(os.Stderr, "first event %q after %s; building…\n", line[7:], firstEvent.Round(time.Millisecond))
		}
		if line == "event: build-end" {
			buildTook = time.Since(t0)
			break
		}
	}
	resp.Body.Close()
	if buildTook == 0 {
		return fmt.Errorf("the event stream ended without build-end: %v (log: %s)", sc.Err(), srv.log.Name())
	}
	st, err := getBuild(client, srv.base, b.ID)
	if err != nil {
		return err
	}
	if st.Status != "succeeded" {
		return fmt.Errorf("build %s: %s (log: %s)", b.ID, st.Status, srv.log.Name())
	}
	var iso struct {
		url, sha string
		size     int64
	}
	for _, a := range st.Artifacts {
		if strings.HasSuffix(a.Name, ".iso") {
			iso.url, iso.sha, iso.size = a.URL, a.SHA256, a.Size
		}
	}
	fmt.Fprintf(report, "| measurement | result |\n|---|---|\n")
	fmt.Fprintf(report, "| POST → 202 answer (new build queued) | %s |\n", ms(answered))
	fmt.Fprintf(report, "| POST → first event (`build-start`) on the stream | %s |\n", ms(firstEvent))
	fmt.Fprintf(report, "| POST → `build-end` (the whole build, %s ISO) | %s |\n", mib(iso.size), buildTook.Round(time.Second))

	// 2. Cache hits, one at a time, then under concurrent load.
	for range 100 {
		if _, s, err := post(client, srv.base, recipeDoc); err != nil || s != 200 {
			return fmt.Errorf("warm-up cache hit: %d %v", s, err)
		}
	}
	lat := make([]time.Duration, 0, o.hits)
	share := startShare()
	for range o.hits {
		t := time.Now()
		a, s, err := post(client, srv.base, recipeDoc)
		if err != nil || s != 200 || a.Outcome != "cache_hit" {
			return fmt.Errorf("cache hit: %d %s %v", s, a.Outcome, err)
		}
		lat = append(lat, time.Since(t))
	}
	p := percentiles(lat)
	fmt.Fprintf(report, "| cache hit, 1 client, %d requests: p50 / p95 / p99 / max | %s / %s / %s / %s (%s) |\n",
		len(lat), ms(p[0]), ms(p[1]), ms(p[2]), ms(p[3]), share.String())
	share = startShare()
	var mu sync.Mutex
	var all []time.Duration
	var errs int
	var wg sync.WaitGroup
	stopAt := time.Now().Add(o.loadFor)
	for range o.conns {
		wg.Go(func() {
			c := newClient(30 * time.Second)
			var mine []time.Duration
			bad := 0
			for time.Now().Before(stopAt) {
				t := time.Now()
				a, s, err := post(c, srv.base, recipeDoc)
				if err != nil || s != 200 || a.Outcome != "cache_hit" {
					bad++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			all = append(all, mine...)
			errs += bad
			mu.Unlock()
		})
	}
	wg.Wait()
	p = percentiles(all)
	fmt.Fprintf(report, "| cache hit, %d concurrent clients for %s: requests/s, p50 / p95 / p99 / max | %.0f/s, %s / %s / %s / %s (%d errors; %s) |\n",
		o.conns, o.loadFor, float64(len(all))/o.loadFor.Seconds(), ms(p[0]), ms(p[1]), ms(p[2]), ms(p[3]), errs, share.String())

	// 3. Downloads against the disk.
	path := filepath.Join(arts, "sha256", iso.sha[:2], iso.sha)
	plain, err := startServer(bin, work, "serve-plain", "--state-dir", state, "--artifact-dir", arts)
	if err != nil {
		return err
	}
	defer plain.stop()
	plainClient := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	if err := waitReady(plainClient, plain.base); err != nil {
		return err
	}
	modes := []struct {
		name   string
		server int // pid whose CPU time is counted; 0: none
		fn     func() (int64, error)
	}{
		{"read the artifact file from disk (1 MiB reads)", 0, func() (int64, error) { return readFile(path) }},
		{"download over HTTPS (TLS 1.3, AES-GCM)", srv.cmd.Process.Pid, func() (int64, error) { return download(newClient(0), srv.base+iso.url) }},
		{"download over plain HTTP (sendfile)", plain.cmd.Process.Pid, func() (int64, error) { return download(plainClient, plain.base+iso.url) }},
	}
	fmt.Fprintf(report, "\nThroughput of the %s ISO, best of %d, MiB/s (cold: page cache dropped before each run); the\n"+
		"server's CPU time per GiB sent (warm runs) says what one core of the server can push when the\n"+
		"client is elsewhere:\n\n| | cold | warm | server CPU s/GiB |\n|---|---|---|---|\n", mib(iso.size), o.downloads)
	share = startShare()
	for _, m := range modes {
		var cold, warm float64
		var cpu time.Duration
		for range o.downloads {
			if err := dropCaches(); err != nil {
				return err
			}
			r, err := throughput(m.fn, iso.size)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			cold = max(cold, r)
			before := cpuTime(m.server)
			r, err = throughput(m.fn, iso.size)
			if err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			cpu += cpuTime(m.server) - before
			warm = max(warm, r)
		}
		perGiB := "—"
		if m.server != 0 {
			perGiB = fmt.Sprintf("%.2f", cpu.Seconds()/float64(o.downloads)/(float64(iso.size)/(1<<30)))
		}
		fmt.Fprintf(report, "| %s | %.0f | %.0f | %s |\n", m.name, cold, warm, perGiB)
	}
	fmt.Fprintf(report, "\nDuring the downloads: %s.\n", share.String())
	fmt.Print(report.String())
	return nil
}

// cpuShare measures, over a stretch of time, the CPU the whole machine used and how much
// of it went to processes outside this benchmark (this process and its descendants: the
// server and PostgreSQL): on a shared machine, latency figures mean little without it.
type cpuShare struct {
	start         time.Time
	machine, ours time.Duration
}

func startShare() cpuShare {
	return cpuShare{start: time.Now(), machine: machineBusy(), ours: treeCPU(os.Getpid())}
}

func (c cpuShare) String() string {
	wall := time.Since(c.start).Seconds() * float64(runtime.NumCPU())
	machine := (machineBusy() - c.machine).Seconds()
	ours := (treeCPU(os.Getpid()) - c.ours).Seconds()
	others := max(machine-ours, 0)
	return fmt.Sprintf("CPU busy %.0f%%, other processes %.0f%%", 100*machine/wall, 100*others/wall)
}

// machineBusy is the CPU time all CPUs spent not idle since boot.
func machineBusy() time.Duration {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	var busy int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest time is counted in user already
			continue
		}
		busy += n
	}
	return time.Duration(busy) * 10 * time.Millisecond
}

// treeCPU is the CPU time of a process and its living descendants.
func treeCPU(root int) time.Duration {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 {
			parent[pid], _ = strconv.Atoi(f[1])
		}
	}
	var total time.Duration
	for pid := range parent {
		for p := pid; p > 1; p = parent[p] {
			if p == root {
				total += cpuTime(pid)
				break
			}
		}
	}
	return total
}

// cpuTime is the user and system CPU time a process used so far (0 for pid 0).
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	// USER_HZ is 100 on Linux.
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func getBuild(c *http.Client, base, id string) (buildAnswer, error) {
	var b buildAnswer
	resp, err := c.Get(base + "/api/v1/builds/" + id)
	if err != nil {
		return b, err
	}
	defer resp.Body.Close()
	return b, json.NewDecoder(resp.Body).Decode(&b)
}

func readFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		k, err := f.Read(buf)
		n += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func download(c *http.Client, url string) (int64, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return io.CopyBuffer(io.Discard, resp.Body, make([]byte, 1<<20))
}

func throughput(fn func() (int64, error), want int64) (float64, error) {
	t := time.Now()
	n, err := fn()
	if err != nil {
		return 0, err
	}
	if n != want {
		return 0, fmt.Errorf("read %d bytes, want %d", n, want)
	}
	return float64(n) / (1 << 20) / time.Since(t).Seconds(), nil
}

// dropCaches empties the page cache, so that the next read comes from the disk.
func dropCaches() error {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0o200)
}

func percentiles(d []time.Duration) [4]time.Duration {
	if len(d) == 0 {
		return [4]time.Duration{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	return [4]time.Duration{at(0.5), at(0.95), at(0.99), s[len(s)-1]}
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) + " ms"
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
