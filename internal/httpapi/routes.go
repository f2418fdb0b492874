package httpapi

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// Route groups: each has its own rate limit (--rate-limit-group NAME=N).
const (
	groupHealth = "health" // never limited: probes must always get through
	groupAPI    = "api"
	groupBuilds = "builds" // the build service; submissions also have a per-client hourly limit
)

// route is one endpoint. Every route is registered from this table and nowhere else,
// which is what lets a test hold the OpenAPI document against it.
type route struct {
	method  string
	path    string
	group   string
	handler func(w http.ResponseWriter, r *http.Request) error
}

func (s *Server) routeTable() []route {
	return []route{
		{"GET", "/health", groupHealth, s.handleLive},
		{"GET", "/api/v1/health/ready", groupHealth, s.handleReady},
		{"GET", "/api/v1/health/db", groupHealth, s.handleDB},
		{"GET", "/api/v1/openapi.json", groupAPI, s.handleOpenAPI},
		{"GET", "/api/v1/version", groupAPI, s.handleVersion},
		{"POST", "/api/v1/builds", groupBuilds, s.handleSubmit},
		{"GET", "/api/v1/builds/{id}", groupBuilds, s.handleBuild},
		{"POST", "/api/v1/builds/{id}/cancel", groupBuilds, s.handleCancel},
		{"GET", "/api/v1/builds/{id}/events", groupBuilds, s.handleEvents},
		{"GET", "/api/v1/builds/{id}/log", groupBuilds, s.handleLog},
		{"GET", "/api/v1/builds/{id}/artifacts/{name}", groupBuilds, s.handleArtifact},
		{"GET", "/api/v1/layers", groupAPI, s.handleLayers},
		{"GET", "/api/v1/layers/{id}", groupAPI, s.handleLayer},
		{"POST", "/api/v1/recipes/check", groupAPI, s.handleCheckRecipe},
	}
}

// routeGroups lists the groups that may be given their own limit.
func routeGroups() []string { return []string{groupAPI, groupBuilds} }

//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(openAPIDoc)
	return err
}

func (s *Server) handleVersion(w http.ResponseWriter, _ *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]string{"version": s.version})
	return nil
}

// handleLive answers liveness: no I/O at all, so it stays fast whatever else is wrong.
func (s *Server) handleLive(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	_, err := w.Write(liveBody)
	return err
}

var liveBody = []byte(`{"status":"ok"}` + "\n")

// check is one readiness check's outcome.
type check struct {
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

type readyBody struct {
	Status string           `json:"status"`
	Checks map[string]check `json:"checks"`
	Error  *errorDetail     `json:"error,omitempty"`
}

// handleReady is 200 when the database answers, its schema is current and the build
// tools are installed; otherwise 503 naming the failed checks. Backups (when enabled)
// are shown as a check too, but a failing one makes the status "degraded", still 200:
// this server serves as well as before, and taking every server out of a load balancer
// over a missed backup would turn a backup problem into an outage. Alerts on backups go
// by /metrics (debate_backup_healthy).
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := map[string]check{}

	if res, err := s.db.Ping(ctx); err != nil {
		checks["database"] = check{Detail: "not answering: " + oneLine(err)}
		checks["migrations"] = check{Detail: "unknown: the database is not answering"}
	} else {
		checks["database"] = check{OK: true, Detail: fmt.Sprintf("round trip %s", res.RoundTrip.Round(time.Microsecond))}
		if st, err := s.db.MigrationStatus(ctx); err != nil {
			checks["migrations"] = check{Detail: "cannot read: " + oneLine(err)}
		} else if !st.Current() {
			checks["migrations"] = check{Detail: st.String() + " (run: debate migrate)"}
		} else {
			checks["migrations"] = check{OK: true, Detail: "current"}
		}
	}

	var missing []string
	for _, tool := range s.cfg.ReadyTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		checks["build_tools"] = check{Detail: "missing on PATH: " + strings.Join(missing, ", ")}
	} else {
		checks["build_tools"] = check{OK: true, Detail: "found: " + strings.Join(s.cfg.ReadyTools, ", ")}
	}

	names := []string{"database", "migrations", "build_tools"}
	state := "ready"
	if s.backups != nil {
		// A backup that fails, or was never proven by a restore, is shown here, not
		// hidden: silent backup failures are found out only when the backup is needed.
		ok, detail := s.backups.Health(ctx)
		checks["backups"] = check{OK: ok, Detail: detail}
		if !ok {
			state = "degraded"
		}
	}

	var failed []string
	for _, name := range names {
		if !checks[name].OK {
			failed = append(failed, name)
		}
	}
	if len(failed) == 0 {
		writeJSON(w, http.StatusOK, readyBody{Status: state, Checks: checks})
		return nil
	}
	status, d := statusOf(fmt.Errorf("%w: failed checks: %s", ErrNotReady, strings.Join(failed, ", ")))
	d.Field = failed[0]
	d.RequestID = requestIDFrom(r.Context())
	writeJSON(w, status, readyBody{Status: "not_ready", Checks: checks, Error: &d})
	return nil
}

type dbBody struct {
	Status      string  `json:"status"`
	RoundTripMS float64 `json:"round_trip_ms"`
	AcquireMS   float64 `json:"acquire_ms"`
}

// handleDB reports the database round-trip time.
func (s *Server) handleDB(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	res, err := s.db.Ping(ctx)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, dbBody{
		Status:      "ok",
		RoundTripMS: float64(res.RoundTrip.Microseconds()) / 1000,
		AcquireMS:   float64(res.Acquire.Microseconds()) / 1000,
	})
	return nil
}

// oneLine keeps an error's first line, for health details.
func oneLine(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// handle adapts an error-returning handler: a returned error becomes the error answer,
// unless the handler already started answering.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				s.logger.LogAttrs(r.Context(), slog.LevelError, "handler failed after answering",
					slog.String("request_id", requestIDFrom(r.Context())), slog.String("error", err.Error()))
				return
			}
			writeError(w, r, s.logger, err)
		}
	})
}

// notFound answers requests no route matched: 405 when the path exists with other
// methods, else 404. mh is the mux's own answer, run against a recorder to learn which.
func (s *Server) notFound(mh http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &headerRecorder{header: http.Header{}}
		mh.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.header.Get("Allow"))
			writeError(w, r, s.logger, fmt.Errorf("%w: %s is not allowed on %s; allowed: %s", ErrMethodNotAllowed, r.Method, r.URL.Path, rec.header.Get("Allow")))
		case http.StatusNotFound, 0:
			writeError(w, r, s.logger, fmt.Errorf("%w: no such endpoint %s; see /api/v1/openapi.json", ErrNotFound, r.URL.Path))
		default:
			// A redirect to the canonical path (e.g. a trailing slash): pass it on.
			for k, v := range rec.header {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.status)
			_, _ = w.Write(rec.body.Bytes())
		}
	})
}

// headerRecorder captures a small answer without sending it.
type headerRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *headerRecorder) Header() http.Header { return h.header }
func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}
func (h *headerRecorder) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	if h.body.Len() > 4096 {
		return 0, errors.New("response too large for the recorder")
	}
	return h.body.Write(b)
}
