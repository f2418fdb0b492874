package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"debate/internal/builder"
)

// Event stream timing.
const (
	// sseKeepalive: a comment line this often keeps proxies and clients from timing out
	// an idle stream (a queued build says nothing for minutes).
	sseKeepalive = 15 * time.Second
	// ssePoll: the stream re-reads the database this often even without a notification,
	// covering notifications lost while the listener reconnected.
	ssePoll = 2 * time.Second
	ssePage = 1000
)

// handleEvents streams a build's events as server-sent events: `id:` is the event's
// sequence number, `event:` its type, `data:` the event as `debate build --json` prints
// it. Events already stored are replayed from Last-Event-ID (or ?after=N), then new ones
// follow as workers store them: the server LISTENs on one PostgreSQL connection for the
// whole process and wakes the streams of the build that has news, with a slow poll as a
// safety net. The stream ends after the build-end event.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) error {
	if s.builds == nil {
		return ErrNoBuildService
	}
	id := r.PathValue("id")
	after, err := lastEventID(r)
	if err != nil {
		return err
	}
	// Subscribe before the first read, so that nothing stored in between is missed.
	wake, stop := s.builds.Subscribe(id)
	defer stop()
	b, err := s.builds.Build(r.Context(), id)
	if err != nil {
		return err
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // nginx: pass events through at once
	sw := newStreamWriter(w, s.cfg.WriteTimeout)
	sw.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "retry: 2000\n: build %s is %s\n\n", id, b.Status)
	if _, err := sw.Write(buf.Bytes()); err != nil {
		return nil
	}
	sw.Flush()

	keepalive := time.NewTicker(sseKeepalive)
	defer keepalive.Stop()
	poll := time.NewTicker(ssePoll)
	defer poll.Stop()
	ctx := r.Context()
	for {
		events, err := s.builds.Events(ctx, id, after, ssePage)
		if err != nil {
			if ctx.Err() == nil {
				s.logger.Warn("event stream: read failed", "build", id, "error", err.Error())
			}
			return nil // the answer has started: the client reconnects with Last-Event-ID
		}
		buf.Reset()
		ended := false
		for _, e := range events {
			after = e.Seq
			writeSSE(&buf, strconv.Itoa(e.Seq), e.Type, e.Data)
			if e.Type == builder.EventBuildEnd {
				ended = true
			}
		}
		if buf.Len() > 0 {
			if _, err := sw.Write(buf.Bytes()); err != nil {
				return nil
			}
			sw.Flush()
		}
		if ended {
			return nil
		}
		if len(events) == ssePage {
			continue // more stored already
		}
		// Nothing new: a finished build whose events are gone (logs past retention, or a
		// build that ended before any event) still gets its end.
		if b, err := s.builds.Build(ctx, id); err == nil && b.Finished() {
			if more, err := s.builds.Events(ctx, id, after, 1); err == nil && len(more) > 0 {
				continue
			}
			buf.Reset()
			writeSSE(&buf, "", builder.EventBuildEnd, syntheticEnd(b.Status, b.Error))
			_, _ = sw.Write(buf.Bytes())
			sw.Flush()
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		case <-keepalive.C:
			if _, err := sw.Write([]byte(": keepalive\n\n")); err != nil {
				return nil
			}
			sw.Flush()
		}
	}
}

// writeSSE appends one event. data is one line of JSON; any newline would end the field,
// so each line gets its own data: prefix, as the format requires.
func writeSSE(buf *bytes.Buffer, id, typ string, data []byte) {
	if id != "" {
		buf.WriteString("id: ")
		buf.WriteString(id)
		buf.WriteByte('\n')
	}
	buf.WriteString("event: ")
	buf.WriteString(typ)
	buf.WriteByte('\n')
	for _, line := range bytes.Split(data, []byte("\n")) {
		buf.WriteString("data: ")
		buf.Write(line)
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
}

// syntheticEnd describes the end of a build whose stored events are gone.
func syntheticEnd(status string, errJSON []byte) []byte {
	ev := builder.Event{Type: builder.EventBuildEnd, Time: time.Now().UTC(), Message: "build " + status + " (its event log is no longer kept)"}
	if len(errJSON) > 0 {
		var info builder.ErrorInfo
		if json.Unmarshal(errJSON, &info) == nil {
			ev.Error = &info
		}
	}
	data, _ := json.Marshal(ev)
	return data
}

// lastEventID is where a stream resumes: the Last-Event-ID header a reconnecting
// EventSource sends, else ?after=N, else the beginning.
func lastEventID(r *http.Request) (int, error) {
	v := strings.TrimSpace(r.Header.Get("Last-Event-ID"))
	field := "Last-Event-ID"
	if v == "" {
		v, field = r.URL.Query().Get("after"), "after"
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, &FieldError{Field: field, Reason: fmt.Sprintf("want an event sequence number (0 or more), got %q", v)}
	}
	return n, nil
}
