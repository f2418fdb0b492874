package httpapi

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"debate/internal/store"
)

// Metrics in the Prometheus text exposition format (version 0.0.4), written by hand:
// a dozen families do not justify a dependency. HTTP metrics are this process's; build
// metrics are read from the database at each scrape, so that one scrape of any server
// sees the work of every worker on every machine.

const latencyBuckets = 15

// latencyBounds are the HTTP latency histogram's buckets, in seconds.
func latencyBounds() [latencyBuckets]float64 {
	return [latencyBuckets]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
}

// durationBounds are the build, stage and queue-wait buckets, in seconds.
func durationBounds() []float64 {
	return []float64{1, 5, 10, 30, 60, 120, 180, 300, 450, 600, 900, 1200, 1800, 3600}
}

// routeMetrics counts one route's requests by status and their latency.
type routeMetrics struct {
	method, path string
	mu           sync.Mutex
	byStatus     map[int]uint64
	buckets      [latencyBuckets]atomic.Uint64
	count        atomic.Uint64
	sumMicros    atomic.Uint64
}

func (m *routeMetrics) observe(status int, d time.Duration) {
	sec := d.Seconds()
	for i, b := range latencyBounds() {
		if sec <= b {
			m.buckets[i].Add(1)
		}
	}
	m.count.Add(1)
	m.sumMicros.Add(uint64(d.Microseconds()))
	m.mu.Lock()
	m.byStatus[status]++
	m.mu.Unlock()
}

// httpMetrics holds every route's metrics; the set is fixed when the handler is built,
// so label values are bounded by the route table (unknown paths share one entry).
type httpMetrics struct {
	routes []*routeMetrics
}

func (h *httpMetrics) add(method, path string) *routeMetrics {
	m := &routeMetrics{method: method, path: path, byStatus: map[int]uint64{}}
	h.routes = append(h.routes, m)
	return m
}

// observe wraps a route's handler to record its answers.
func (s *Server) observe(m *routeMetrics, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		next.ServeHTTP(w, r)
		status := http.StatusOK
		if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
			status = sw.status
		}
		m.observe(status, time.Since(start))
	})
}

// MetricsHandler serves GET /metrics. It belongs on a listener of its own that only the
// monitoring system reaches (--metrics-listen), not on the public one.
func (s *Server) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		bw := bufio.NewWriterSize(w, 32<<10)
		s.writeHTTPMetrics(bw)
		if err := s.writeBuildMetrics(ctx, bw); err != nil {
			fmt.Fprintf(bw, "# build metrics unavailable: %s\ndebate_build_metrics_up 0\n", oneLine(err))
		} else if s.builds != nil {
			fmt.Fprintf(bw, "# HELP debate_build_metrics_up Whether the build metrics could be read from the database.\n# TYPE debate_build_metrics_up gauge\ndebate_build_metrics_up 1\n")
		}
		if s.backups != nil {
			if err := s.backups.WriteMetrics(ctx, bw); err != nil {
				fmt.Fprintf(bw, "# backup metrics unavailable: %s\n", oneLine(err))
			}
		}
		_ = bw.Flush()
	})
	return mux
}

func (s *Server) writeHTTPMetrics(w *bufio.Writer) {
	routes := s.metrics.routes
	family(w, "debate_http_requests_total", "counter", "HTTP requests answered, by route and status.")
	for _, m := range routes {
		m.mu.Lock()
		codes := make([]int, 0, len(m.byStatus))
		for c := range m.byStatus {
			codes = append(codes, c)
		}
		sort.Ints(codes)
		for _, c := range codes {
			fmt.Fprintf(w, "debate_http_requests_total{method=%q,route=%q,status=\"%d\"} %d\n", m.method, m.path, c, m.byStatus[c])
		}
		m.mu.Unlock()
	}
	family(w, "debate_http_request_duration_seconds", "histogram", "HTTP request latency, by route (streams and downloads last as long as they stream).")
	for _, m := range routes {
		n := m.count.Load()
		if n == 0 {
			continue
		}
		labels := fmt.Sprintf("method=%q,route=%q", m.method, m.path)
		for i, b := range latencyBounds() {
			fmt.Fprintf(w, "debate_http_request_duration_seconds_bucket{%s,le=%q} %d\n", labels, formatFloat(b), m.buckets[i].Load())
		}
		fmt.Fprintf(w, "debate_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %d\n", labels, n)
		fmt.Fprintf(w, "debate_http_request_duration_seconds_sum{%s} %s\n", labels, formatFloat(float64(m.sumMicros.Load())/1e6))
		fmt.Fprintf(w, "debate_http_request_duration_seconds_count{%s} %d\n", labels, n)
	}
}

func (s *Server) writeBuildMetrics(ctx context.Context, w *bufio.Writer) error {
	if s.builds == nil {
		return nil
	}
	c := s.builds.Counters()
	family(w, "debate_build_submissions_total", "counter", "Build submissions answered by this server, by outcome.")
	fmt.Fprintf(w, "debate_build_submissions_total{outcome=\"cache_hit\"} %d\n", c.InstantHits)
	fmt.Fprintf(w, "debate_build_submissions_total{outcome=\"in_flight\"} %d\n", c.Joined)
	fmt.Fprintf(w, "debate_build_submissions_total{outcome=\"queued\"} %d\n", c.Enqueued)

	m, err := s.builds.Metrics(ctx, durationBounds())
	if err != nil {
		return err
	}
	family(w, "debate_builds", "gauge", "Builds in the database by status (terminal statuses are outcomes: succeeded, failed, cancelled).")
	for _, st := range []string{store.StatusQueued, store.StatusRunning, store.StatusSucceeded, store.StatusFailed, store.StatusCancelled} {
		fmt.Fprintf(w, "debate_builds{status=%q} %d\n", st, m.ByStatus[st])
	}
	family(w, "debate_build_cache_hits_total", "counter", "Cache hits: answered at submission by this server (submit) or found by a worker after resolving (worker, all workers).")
	fmt.Fprintf(w, "debate_build_cache_hits_total{where=\"submit\"} %d\n", c.InstantHits)
	fmt.Fprintf(w, "debate_build_cache_hits_total{where=\"worker\"} %d\n", m.WorkerHits)
	family(w, "debate_build_cache_misses_total", "counter", "Builds that ran the pipeline past resolve (no identical build existed), all workers.")
	fmt.Fprintf(w, "debate_build_cache_misses_total %d\n", m.Built)
	family(w, "debate_build_queue_length", "gauge", "Builds waiting for a worker.")
	fmt.Fprintf(w, "debate_build_queue_length %d\n", m.QueueLength)
	family(w, "debate_build_queue_oldest_seconds", "gauge", "How long the oldest queued build has waited.")
	fmt.Fprintf(w, "debate_build_queue_oldest_seconds %s\n", formatFloat(m.OldestQueuedAt))
	family(w, "debate_builds_running", "gauge", "Builds running now.")
	fmt.Fprintf(w, "debate_builds_running %d\n", m.Running)
	family(w, "debate_workers_alive", "gauge", "Worker processes with a recent heartbeat.")
	fmt.Fprintf(w, "debate_workers_alive %d\n", m.WorkersAlive)
	family(w, "debate_worker_build_slots", "gauge", "Builds the live workers can run at once.")
	fmt.Fprintf(w, "debate_worker_build_slots %d\n", m.Capacity)
	histogram(w, "debate_build_duration_seconds", "Run time of builds that ran the pipeline (succeeded or failed).", "", m.BuildSeconds)
	histogram(w, "debate_build_queue_wait_seconds", "Time from submission to a worker starting the build (builds that started once).", "", m.QueueWait)
	family(w, "debate_build_stage_duration_seconds", "histogram", "Duration of each finished pipeline stage.")
	for _, stage := range m.StageOrder {
		writeHistogram(w, "debate_build_stage_duration_seconds", fmt.Sprintf("stage=%q", stage), m.StageSeconds[stage])
	}
	return nil
}

func family(w *bufio.Writer, name, typ, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
}

func histogram(w *bufio.Writer, name, help, labels string, h store.Histogram) {
	family(w, name, "histogram", help)
	writeHistogram(w, name, labels, h)
}

func writeHistogram(w *bufio.Writer, name, labels string, h store.Histogram) {
	sep := ""
	if labels != "" {
		sep = ","
	}
	for i, b := range h.Bounds {
		fmt.Fprintf(w, "%s_bucket{%s%sle=%q} %d\n", name, labels, sep, formatFloat(b), h.Counts[i])
	}
	fmt.Fprintf(w, "%s_bucket{%s%sle=\"+Inf\"} %d\n", name, labels, sep, h.Count)
	braces := ""
	if labels != "" {
		braces = "{" + labels + "}"
	}
	fmt.Fprintf(w, "%s_sum%s %s\n", name, braces, formatFloat(h.Sum))
	fmt.Fprintf(w, "%s_count%s %d\n", name, braces, h.Count)
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	s := strconv.FormatFloat(f, 'g', -1, 64)
	if strings.Contains(s, "e") {
		s = strconv.FormatFloat(f, 'f', -1, 64)
	}
	return s
}
