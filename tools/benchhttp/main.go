// Command benchhttp measures the API server under load: `make bench-http`.
//
// By default it sets up the whole run: a private PostgreSQL cluster, `debate serve` over
// TLS (self-signed) as its own process with the rate limit raised, and then, for each
// route, the load generator — this same program with --load — as a third process, so
// that neither the database nor the load shares the server's process. It prints
// requests/s, latency percentiles and errors per route, and checks them against the
// targets.
//
// With --load it is only the load generator: N keep-alive HTTP/1.1 connections, each
// sending the next request as soon as the previous answer arrived, for a fixed time.
package main

import (
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

func main() {
	os.Exit(run())
}

type options struct {
	load        bool
	url         string
	caFile      string
	conns       int
	duration    time.Duration
	warmup      time.Duration
	server      string
	routes      string
	targets     string
	serverFlags string
	generator   string
	threads     int
}

func run() int {
	var o options
	fs := flag.NewFlagSet("benchhttp", flag.ContinueOnError)
	fs.BoolVar(&o.load, "load", false, "only generate load against --url (the child process mode)")
	fs.StringVar(&o.url, "url", "", "URL to load (with --load)")
	fs.StringVar(&o.caFile, "cacert", "", "CA certificate to trust (with --load)")
	fs.IntVar(&o.conns, "c", 100, "concurrent connections")
	fs.DurationVar(&o.duration, "d", 30*time.Second, "measured duration per route")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured warm-up per route (connections opened, caches warm)")
	fs.StringVar(&o.server, "server", "bin/debate", "the debate binary to serve with")
	fs.StringVar(&o.routes, "routes", "/health,/api/v1/health/db", "routes to load, one after the other")
	fs.StringVar(&o.targets, "targets", "/health=10ms,/api/v1/health/db=25ms", "p99 targets per route")
	fs.StringVar(&o.serverFlags, "server-flags", "", "extra flags for debate serve (space-separated)")
	fs.IntVar(&o.threads, "threads", 1, "wrk threads (one leaves the other core of a 2-core machine to the server and PostgreSQL)")
	fs.StringVar(&o.generator, "generator", "auto", "load generator: wrk (C, lighter on a shared CPU), go (this program), or auto (wrk when installed)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if o.load {
		return loadMain(o)
	}
	if err := orchestrate(o); err != nil {
		fmt.Fprintf(os.Stderr, "benchhttp: %v\n", err)
		return 1
	}
	return 0
}

// result is one route's measurement, passed from the load process as JSON.
type result struct {
	URL      string  `json:"url"`
	Conns    int     `json:"connections"`
	Seconds  float64 `json:"seconds"`
	Requests int     `json:"requests"`
	Errors   int     `json:"errors"`
	FirstErr string  `json:"first_error,omitempty"`
	RPS      float64 `json:"requests_per_second"`
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
}

func loadMain(o options) int {
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchhttp --load: %v\n", err)
		return 2
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	r := generate(o.url, pool, o.conns, o.warmup, o.duration)
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 1
	}
	return 0
}

// generate runs conns closed-loop clients, each on its own keep-alive connection.
func generate(url string, pool *x509.CertPool, conns int, warmup, duration time.Duration) result {
	start := time.Now()
	measureFrom := start.Add(warmup)
	stopAt := measureFrom.Add(duration)
	type worker struct {
		lat      []time.Duration
		errs     int
		firstErr string
	}
	workers := make([]worker, conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &workers[i]
		w.lat = make([]time.Duration, 0, 1<<16)
		wg.Go(func() {
			// One transport per client: exactly one connection each, as HTTP/1.1
			// (HTTP/2 would multiplex every client onto one connection).
			tr := &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}},
				MaxIdleConnsPerHost: 1,
				MaxConnsPerHost:     1,
				DisableCompression:  true,
			}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				t0 := time.Now()
				if t0.After(stopAt) {
					return
				}
				err := fetch(client, url)
				d := time.Since(t0)
				if t0.Before(measureFrom) {
					continue
				}
				if err != nil {
					w.errs++
					if w.firstErr == "" {
						w.firstErr = err.Error()
					}
					continue
				}
				w.lat = append(w.lat, d)
			}
		})
	}
	wg.Wait()
	var all []time.Duration
	r := result{URL: url, Conns: conns, Seconds: duration.Seconds()}
	for _, w := range workers {
		all = append(all, w.lat...)
		r.Errors += w.errs
		if r.FirstErr == "" {
			r.FirstErr = w.firstErr
		}
	}
	slices.Sort(all)
	r.Requests = len(all)
	r.RPS = float64(len(all)) / duration.Seconds()
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := int(p * float64(len(all)-1))
		return float64(all[i].Microseconds()) / 1000
	}
	r.P50, r.P95, r.P99, r.Max = pct(0.50), pct(0.95), pct(0.99), pct(1)
	return r
}

func fetch(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

func orchestrate(o options) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	server, err := filepath.Abs(o.server)
	if err != nil {
		return err
	}
	if _, err := os.Stat(server); err != nil {
		return fmt.Errorf("debate binary: %w (run make build)", err)
	}
	work, err := os.MkdirTemp("", "debate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Room for the pool plus our own connections.
	cluster, err := pgtest.Start(ctx, pgtest.Options{Settings: map[string]string{"max_connections": "200"}})
	if err != nil {
		return err
	}
	defer cluster.Close()
	dbURL, err := cluster.CreateDatabase(ctx, "bench")
	if err != nil {
		return err
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	logPath := filepath.Join(work, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := []string{"serve",
		"--listen", "127.0.0.1:" + strconv.Itoa(port), "--http-listen", "",
		"--tls-self-signed", "--state-dir", filepath.Join(work, "state"),
		"--migrate-on-start", "--ready-tools", "sh",
		// No metrics listener: its fixed default port would collide with a dev server.
		"--metrics-listen", "",
		// Raised, not off: the limiter's cost stays in the measurement.
		"--rate-limit", "100000000",
	}
	args = append(args, strings.Fields(o.serverFlags)...)
	srv := exec.Command(server, args...)
	srv.Env = append(os.Environ(), "DATABASE_URL="+dbURL)
	srv.Stdout, srv.Stderr = logf, logf
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return err
	}
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Wait() }()
	defer func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-srvDone:
		case <-time.After(40 * time.Second):
			_ = srv.Process.Kill()
		}
	}()

	caFile := filepath.Join(work, "state", "ca", "ca.pem")
	base := "https://localhost:" + strconv.Itoa(port)
	if err := waitReady(base+"/api/v1/health/ready", caFile, srvDone, 30*time.Second); err != nil {
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\nserver log:\n%s", err, log)
	}

	targets := map[string]time.Duration{}
	for _, t := range strings.Split(o.targets, ",") {
		route, d, ok := strings.Cut(t, "=")
		if dur, err := time.ParseDuration(d); ok && err == nil {
			targets[route] = dur
		}
	}

	gen := o.generator
	if gen == "auto" {
		gen = "go"
		if _, err := exec.LookPath("wrk"); err == nil {
			gen = "wrk"
		}
	}
	if gen != "wrk" && gen != "go" {
		return fmt.Errorf("--generator %q: want wrk, go or auto", o.generator)
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("debate %s, Go %s, %d CPUs, load average before the run: %s\n",
		versionOf(server), runtime.Version(), runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	fmt.Printf("server: debate serve over TLS (self-signed), HTTP/1.1 keep-alive, access log on (JSON to a file), PostgreSQL on a unix socket\n")
	genLabel := "Go net/http client (benchhttp --load)"
	if gen == "wrk" {
		genLabel = fmt.Sprintf("wrk with %d threads", o.threads)
	}
	fmt.Printf("load: %s, %d connections, closed loop, %s warm-up then %s measured per route, in a separate process\n\n", genLabel, o.conns, o.warmup, o.duration)
	fmt.Printf("%-20s %9s %8s %8s %8s %8s %8s %6s %6s  %s\n", "route", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors", "other", "target")
	failed := false
	var costs []string
	for _, route := range strings.Split(o.routes, ",") {
		var r result
		var loadCPU time.Duration
		var err error
		var before cpuSnap
		mark := func() { before = readCPU(srv.Process.Pid) }
		if gen == "wrk" {
			r, loadCPU, err = runWrk(work, base+route, o.threads, o.conns, o.warmup, o.duration, mark)
		} else {
			mark()
			r, loadCPU, err = runGoLoad(self, base+route, caFile, o)
		}
		if err != nil {
			return err
		}
		after := readCPU(srv.Process.Pid)
		other := otherCPU(before, after, loadCPU)
		perReq := func(ticks uint64) float64 {
			if r.Requests == 0 {
				return 0
			}
			return float64(time.Duration(ticks)*clockTick/time.Microsecond) / float64(r.Requests)
		}
		costs = append(costs, fmt.Sprintf("%-20s server %.0f µs, postgres %.0f µs, load generator %.0f µs",
			route, perReq(after.server-before.server), perReq(after.pg-before.pg), float64(loadCPU/time.Microsecond)/float64(max(1, r.Requests))))
		verdict := "-"
		if t, ok := targets[route]; ok {
			ok := r.Errors == 0 && time.Duration(r.P99*float64(time.Millisecond)) < t
			verdict = fmt.Sprintf("p99 < %s, 0 errors: %s", t, map[bool]string{true: "met", false: "MISSED"}[ok])
			failed = failed || !ok
		}
		fmt.Printf("%-20s %9d %8.0f %8.2f %8.2f %8.2f %8.2f %6d %5.0f%%  %s\n", route, r.Requests, r.RPS, r.P50, r.P95, r.P99, r.Max, r.Errors, other, verdict)
		if r.FirstErr != "" {
			fmt.Printf("  first error: %s\n", r.FirstErr)
		}
	}
	fmt.Println("\nother: CPU used by processes outside the benchmark during the measurement, as a share of the machine;")
	fmt.Println("       figures taken with more than a few percent there are not this server's.")
	fmt.Println("\nCPU time per request:")
	for _, c := range costs {
		fmt.Println("  " + c)
	}
	if st, err := os.Stat(logPath); err == nil {
		fmt.Printf("\nserver access log: %.1f MB of JSON lines (written during the run)\n", float64(st.Size())/1e6)
	}
	if failed {
		return errors.New("a target was missed")
	}
	return nil
}

func runGoLoad(self, url, caFile string, o options) (result, time.Duration, error) {
	cmd := exec.Command(self, "--load", "--url", url, "--cacert", caFile,
		"-c", strconv.Itoa(o.conns), "-d", o.duration.String(), "--warmup", o.warmup.String())
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, 0, fmt.Errorf("load process for %s: %w", url, err)
	}
	var r result
	if err := json.Unmarshal(out, &r); err != nil {
		return result{}, 0, fmt.Errorf("load process output %q: %w", out, err)
	}
	return r, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), nil
}

// wrkScript makes wrk print its figures as one JSON line; non-2xx answers count as errors.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCHJSON {\"requests\":%d,\"errors\":%d,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"micros\":%d}\n",
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50)/1000, latency:percentile(95)/1000, latency:percentile(99)/1000, latency.max/1000, summary.duration))
end
`

// runWrk loads url with wrk: a warm-up run, then the measured one.
func runWrk(work, url string, threads, conns int, warmup, duration time.Duration, before func()) (result, time.Duration, error) {
	script := filepath.Join(work, "bench.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return result{}, 0, err
	}
	secs := func(d time.Duration) string { return strconv.Itoa(max(1, int(d.Seconds()))) + "s" }
	if warmup > 0 {
		if out, err := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", secs(warmup), url).CombinedOutput(); err != nil {
			return result{}, 0, fmt.Errorf("wrk warm-up: %w\n%s", err, out)
		}
	}
	before()
	cmd := exec.Command("wrk", "-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", secs(duration), "-s", script, url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, 0, fmt.Errorf("wrk: %w\n%s", err, out)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	_, line, ok := strings.Cut(string(out), "BENCHJSON ")
	if !ok {
		return result{}, 0, fmt.Errorf("wrk printed no figures:\n%s", out)
	}
	line, _, _ = strings.Cut(line, "\n")
	var w struct {
		Requests int     `json:"requests"`
		Errors   int     `json:"errors"`
		P50      float64 `json:"p50_ms"`
		P95      float64 `json:"p95_ms"`
		P99      float64 `json:"p99_ms"`
		Max      float64 `json:"max_ms"`
		Micros   int64   `json:"micros"`
	}
	if err := json.Unmarshal([]byte(line), &w); err != nil {
		return result{}, 0, fmt.Errorf("wrk figures %q: %w", line, err)
	}
	secsRun := float64(w.Micros) / 1e6
	return result{URL: url, Conns: conns, Seconds: secsRun, Requests: w.Requests, Errors: w.Errors,
		RPS: float64(w.Requests) / secsRun, P50: w.P50, P95: w.P95, P99: w.P99, Max: w.Max}, cpu, nil
}

// cpuSnap is a reading of CPU time in clock ticks: the whole machine's, and ours (the
// server and every postgres process).
type cpuSnap struct {
	busy, total uint64
	server, pg  uint64
}

const clockTick = 10 * time.Millisecond // USER_HZ is 100 on Linux

func readCPU(serverPid int) cpuSnap {
	var c cpuSnap
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i := 1; i < len(f) && i <= 8; i++ {
			v, _ := strconv.ParseUint(f[i], 10, 64)
			c.total += v
			if i != 4 && i != 5 { // idle, iowait
				c.busy += v
			}
		}
	}
	procCPU := func(pid string) (comm string, ticks uint64) {
		b, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return "", 0
		}
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			return "", 0
		}
		f := strings.Fields(s[close+1:])
		if len(f) < 13 {
			return "", 0
		}
		u, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		return s[open+1 : close], u + st
	}
	_, c.server = procCPU(strconv.Itoa(serverPid))
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if comm, t := procCPU(e.Name()); comm == "postgres" {
			c.pg += t
		}
	}
	return c
}

// otherCPU is the share of the machine used by processes outside the benchmark between
// two readings (loadCPU: what the load process used): a high figure means the numbers
// were measured on a busy machine.
func otherCPU(a, b cpuSnap, loadCPU time.Duration) float64 {
	total := float64(b.total - a.total)
	if total <= 0 {
		return 0
	}
	other := float64(b.busy-a.busy) - float64(b.server-a.server) - float64(b.pg-a.pg) - float64(loadCPU/clockTick)
	return max(0, 100*other/total)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(url, caFile string, srvDone <-chan error, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-srvDone:
			return fmt.Errorf("server exited during start-up: %v", err)
		default:
		}
		if pem, err := os.ReadFile(caFile); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(pem)
			c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
			if err := fetch(c, url); err == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("server not ready after %s", limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func versionOf(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
