package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"debate/internal/builder"
	"debate/internal/jobs"
	"debate/internal/recipe"
)

// buildBody is a build as the API shows it.
type buildBody struct {
	ID string `json:"id"`
	// Status is queued, running, succeeded, failed or cancelled.
	Status string `json:"status"`
	// Outcome is set on POST answers: cache_hit, in_flight or queued.
	Outcome    string `json:"outcome,omitempty"`
	Name       string `json:"name"`
	RecipeHash string `json:"recipe_hash"`
	BuildKey   string `json:"build_key,omitempty"`
	// CacheHitOf names the build whose artifacts this build shares, when a worker found
	// the identical build after resolving.
	CacheHitOf      string          `json:"cache_hit_of,omitempty"`
	Attempt         int             `json:"attempt"`
	CreatedAt       time.Time       `json:"created_at"`
	StartedAt       *time.Time      `json:"started_at,omitempty"`
	FinishedAt      *time.Time      `json:"finished_at,omitempty"`
	CancelRequested bool            `json:"cancel_requested,omitempty"`
	Queue           *queueBody      `json:"queue,omitempty"`
	EstimatedFinish *time.Time      `json:"estimated_finish,omitempty"`
	Stages          []stageBody     `json:"stages"`
	Error           *buildErrorBody `json:"error,omitempty"`
	Artifacts       []artifactBody  `json:"artifacts"`
	Links           linksBody       `json:"links"`
	LogsRemoved     bool            `json:"logs_removed,omitempty"`
}

type queueBody struct {
	Position        int       `json:"position"`
	EstimatedStart  time.Time `json:"estimated_start"`
	EstimatedFinish time.Time `json:"estimated_finish"`
	Basis           string    `json:"basis"`
}

type stageBody struct {
	Name      string    `json:"name"`
	StartedAt time.Time `json:"started_at"`
	// Seconds is set once the stage ended.
	Seconds *float64 `json:"seconds,omitempty"`
	// State is done, running, or interrupted (the build ended or restarted in it).
	State string `json:"state"`
}

// buildErrorBody is the builder's classified error.
type buildErrorBody struct {
	Code    string   `json:"code"`
	Stage   string   `json:"stage,omitempty"`
	Message string   `json:"message"`
	Hint    string   `json:"hint,omitempty"`
	LogTail []string `json:"log_tail,omitempty"`
}

type artifactBody struct {
	Name        string `json:"name"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
	URL         string `json:"url"`
}

type linksBody struct {
	Self   string `json:"self"`
	Events string `json:"events"`
	Log    string `json:"log"`
	Cancel string `json:"cancel"`
}

func buildURL(id string) string { return "/api/v1/builds/" + id }

func newBuildBody(st *jobs.Status) buildBody {
	b := st.Build
	self := buildURL(b.ID)
	out := buildBody{
		ID: b.ID, Status: b.Status, Name: b.Name, RecipeHash: b.RecipeHash, BuildKey: b.BuildKey,
		CacheHitOf: b.CacheHitOf, Attempt: b.Attempt, CreatedAt: b.CreatedAt.UTC(),
		StartedAt: utc(b.StartedAt), FinishedAt: utc(b.FinishedAt),
		CancelRequested: b.CancelAt != nil && !b.Finished(),
		EstimatedFinish: utc(st.EstimatedFinish),
		Stages:          []stageBody{}, Artifacts: []artifactBody{},
		Links:       linksBody{Self: self, Events: self + "/events", Log: self + "/log", Cancel: self + "/cancel"},
		LogsRemoved: b.LogsRemovedAt != nil,
	}
	if q := st.Queue; q != nil {
		out.Queue = &queueBody{Position: q.Position, EstimatedStart: q.EstimatedStart, EstimatedFinish: q.EstimatedFinish, Basis: q.Basis}
	}
	for _, sg := range st.Stages {
		state := "done"
		if sg.Seconds == nil {
			state = "running"
			if b.Finished() {
				state = "interrupted"
			}
		}
		out.Stages = append(out.Stages, stageBody{Name: sg.Name, StartedAt: sg.StartedAt.UTC(), Seconds: sg.Seconds, State: state})
	}
	if len(b.Error) > 0 {
		var info builder.ErrorInfo
		if json.Unmarshal(b.Error, &info) == nil {
			out.Error = &buildErrorBody{Code: info.Code, Stage: info.Stage, Message: info.Message, Hint: info.Hint, LogTail: info.LogTail}
		}
	}
	for _, a := range st.Artifacts {
		out.Artifacts = append(out.Artifacts, artifactBody{Name: a.Name, SHA256: a.SHA256, Size: a.Size,
			ContentType: a.ContentType, URL: self + "/artifacts/" + a.Name})
	}
	return out
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// readRecipe reads and parses the recipe in the request's body, in the format its
// Content-Type names.
func readRecipe(r *http.Request) (*recipe.Recipe, error) {
	format, err := recipeFormat(r)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	return recipe.Parse(data, format)
}

// recipeFormat reads the body's format from Content-Type: JSON, or YAML with a YAML type.
func recipeFormat(r *http.Request) (recipe.Format, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return recipe.Auto, nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, fmt.Errorf("%w: Content-Type %q cannot be parsed", ErrUnsupportedMediaType, ct)
	}
	switch mt {
	case "application/json":
		return recipe.JSON, nil
	case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
		return recipe.YAML, nil
	}
	return 0, fmt.Errorf("%w: send the recipe as application/json or application/yaml (text/yaml), not %s", ErrUnsupportedMediaType, mt)
}

// handleSubmit takes a recipe: 200 with a finished identical build (cache hit) or the
// identical build in flight, 202 with a newly queued one.
func (s *Server) handleSubmit(w http.ResponseWriter, r *http.Request) error {
	if s.builds == nil {
		return fmt.Errorf("%w: start the server with a database and artifact store", ErrNoBuildService)
	}
	rec, err := readRecipe(r)
	if err != nil {
		return err
	}
	sub, err := s.builds.Submit(r.Context(), rec, limitKey(clientFrom(r.Context())))
	if err != nil {
		return err
	}
	body := newBuildBody(sub.Status)
	body.Outcome = sub.Outcome
	status := http.StatusOK
	if sub.Outcome == jobs.OutcomeQueued {
		status = http.StatusAccepted
	}
	if sub.Outcome != jobs.OutcomeCacheHit {
		w.Header().Set("Location", body.Links.Self)
	} else {
		w.Header().Set("Content-Location", body.Links.Self)
	}
	writeJSON(w, status, body)
	return nil
}

func (s *Server) handleBuild(w http.ResponseWriter, r *http.Request) error {
	if s.builds == nil {
		return ErrNoBuildService
	}
	st, err := s.builds.Status(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, newBuildBody(st))
	return nil
}

// handleCancel stops a build: a queued one at once (200, cancelled), a running one once
// its worker has killed the sandbox (202, cancel_requested; follow the status or the
// event stream). A finished build is a 409.
func (s *Server) handleCancel(w http.ResponseWriter, r *http.Request) error {
	if s.builds == nil {
		return ErrNoBuildService
	}
	st, err := s.builds.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !st.Build.Finished() {
		status = http.StatusAccepted
	}
	writeJSON(w, status, newBuildBody(st))
	return nil
}

// handleLog writes the build's whole log as text: every tool's output line, with the
// time since the build started (as `debate build --log` writes it), plus stage and
// warning lines.
func (s *Server) handleLog(w http.ResponseWriter, r *http.Request) error {
	if s.builds == nil {
		return ErrNoBuildService
	}
	id := r.PathValue("id")
	st, err := s.builds.Status(r.Context(), id)
	if err != nil {
		return err
	}
	if st.Build.LogsRemovedAt != nil {
		return fmt.Errorf("%w: the log of this build was removed on %s (logs are kept for a limited time after the build ends)",
			ErrGone, st.Build.LogsRemovedAt.UTC().Format(time.DateOnly))
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	sw := newStreamWriter(w, s.cfg.WriteTimeout)
	var start time.Time
	after := 0
	var line strings.Builder
	for {
		events, err := s.builds.Events(r.Context(), id, after, 5000)
		if err != nil {
			if after == 0 {
				return err
			}
			return fmt.Errorf("log cut short: %w", err) // the answer has started
		}
		for _, e := range events {
			after = e.Seq
			var ev builder.Event
			if json.Unmarshal(e.Data, &ev) != nil {
				continue
			}
			if ev.Type == builder.EventBuildStart || start.IsZero() {
				start = ev.Time
			}
			line.Reset()
			fmt.Fprintf(&line, "[%7.1fs] ", ev.Time.Sub(start).Seconds())
			switch ev.Type {
			case builder.EventLog:
				line.WriteString(ev.Message)
			case builder.EventProgress:
				continue
			case builder.EventStageStart:
				fmt.Fprintf(&line, "== stage %s: %s", ev.Stage, ev.Message)
			case builder.EventStageEnd:
				fmt.Fprintf(&line, "== stage %s done in %.1fs", ev.Stage, ev.Seconds)
			case builder.EventBuildEnd:
				if ev.Error != nil {
					fmt.Fprintf(&line, "== build failed [%s] %s", ev.Error.Code, ev.Error.Message)
				} else {
					fmt.Fprintf(&line, "== %s", ev.Message)
				}
			default:
				fmt.Fprintf(&line, "== %s: %s", ev.Type, ev.Message)
			}
			line.WriteByte('\n')
			if _, err := io.WriteString(sw, line.String()); err != nil {
				return nil // the client went away
			}
		}
		if len(events) < 5000 {
			return nil
		}
	}
}

// handleArtifact serves a file of a succeeded build: Range requests, conditional
// requests on the ETag (its sha256), HEAD; the file is streamed from the artifact store
// without being read into memory.
func (s *Server) handleArtifact(w http.ResponseWriter, r *http.Request) error {
	if s.builds == nil {
		return ErrNoBuildService
	}
	f, a, err := s.builds.OpenArtifact(r.Context(), r.PathValue("id"), r.PathValue("name"))
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != a.Size {
		return fmt.Errorf("artifact %s is %d bytes in the store, %d recorded", a.SHA256, fi.Size(), a.Size)
	}
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("ETag", `"`+a.SHA256+`"`)
	// A build's file never changes: its name is under the build's id, its bytes are
	// its digest.
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": a.Name}))
	h.Set("X-Content-SHA256", a.SHA256)
	// ServeContent handles Range, If-Range, If-None-Match (against the ETag above) and
	// HEAD, and sets Content-Length.
	http.ServeContent(newStreamWriter(w, s.cfg.WriteTimeout), r, "", fi.ModTime(), f)
	return nil
}

// streamWriter extends the connection's write deadline while a long answer (a download,
// a log, an event stream) makes progress: the server's WriteTimeout then bounds each
// stall rather than the whole answer, so a slow client that keeps reading is never cut
// off and one that stops reading is.
type streamWriter struct {
	http.ResponseWriter
	rc       *http.ResponseController
	timeout  time.Duration
	extended time.Time
}

func newStreamWriter(w http.ResponseWriter, timeout time.Duration) *streamWriter {
	sw := &streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: timeout}
	sw.extend()
	return sw
}

// extend pushes the deadline out, at most once a second (it costs a timer update).
func (sw *streamWriter) extend() {
	now := time.Now()
	if now.Sub(sw.extended) < time.Second {
		return
	}
	sw.extended = now
	_ = sw.rc.SetWriteDeadline(now.Add(sw.timeout))
}

func (sw *streamWriter) Write(b []byte) (int, error) {
	sw.extend()
	return sw.ResponseWriter.Write(b)
}

// streamChunk bounds how much one ReadFrom call sends between deadline extensions.
const streamChunk = 8 << 20

// ReadFrom lets io.Copy hand the file to the connection (sendfile on plain HTTP), in
// chunks so that the deadline keeps moving. The *io.LimitedReader that ServeContent
// passes is narrowed in place rather than wrapped, since the kernel path only sees
// through one LimitedReader.
func (sw *streamWriter) ReadFrom(src io.Reader) (int64, error) {
	rf, ok := sw.ResponseWriter.(io.ReaderFrom)
	if !ok {
		return io.Copy(writerOnly{sw}, src)
	}
	outer, limited := src.(*io.LimitedReader)
	var total int64
	for {
		sw.extend()
		var chunk *io.LimitedReader
		if limited {
			if outer.N <= 0 {
				return total, nil
			}
			chunk = &io.LimitedReader{R: outer.R, N: min(outer.N, streamChunk)}
		} else {
			chunk = &io.LimitedReader{R: src, N: streamChunk}
		}
		n, err := rf.ReadFrom(chunk)
		total += n
		if limited {
			outer.N -= n
		}
		if err != nil {
			return total, err
		}
		if n == 0 || chunk.N > 0 { // the source ended before the chunk did
			return total, nil
		}
	}
}

func (sw *streamWriter) Flush() {
	sw.extend()
	_ = sw.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (sw *streamWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// writerOnly hides ReadFrom, so that io.Copy does not call back into it.
type writerOnly struct{ io.Writer }
