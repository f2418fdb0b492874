package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"debate/internal/jobs"
	"debate/internal/recipe"
	"debate/internal/store"
)

// Sentinel errors for the cases the API answers itself. Handlers return them (wrapped
// with %w and a message that says what to do); statusOf turns them into responses.
var (
	ErrNotFound         = errors.New("not found")
	ErrMethodNotAllowed = errors.New("method not allowed")
	ErrInvalid          = errors.New("invalid request")
	ErrInvalidJSON      = errors.New("body is not valid JSON")
	ErrHostNotAllowed   = errors.New("host not allowed")
	ErrCrossOrigin      = errors.New("cross-origin request refused")
	ErrRateLimited      = errors.New("rate limit exceeded")
	ErrBodyTooLarge     = errors.New("request body too large")
	ErrNotReady         = errors.New("not ready")
	// ErrUnsupportedMediaType: a body in a format the endpoint does not read.
	ErrUnsupportedMediaType = errors.New("unsupported media type")
	// ErrGone: the thing existed and was removed (a build log past its retention).
	ErrGone = errors.New("gone")
	// ErrNoBuildService: this server was started without the build service.
	ErrNoBuildService = errors.New("build service not configured")
)

// FieldError is a request that is wrong in one field.
type FieldError struct {
	Field  string // JSON path, e.g. "layers[2].name"
	Reason string // what is wrong and what to do
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// rateLimitError carries the wait a client must respect.
type rateLimitError struct {
	limit      int
	retryAfter int // whole seconds, at least 1
}

func (e *rateLimitError) Error() string {
	return fmt.Sprintf("too many requests: the limit is %d per minute per client; retry after %d s", e.limit, e.retryAfter)
}
func (e *rateLimitError) Unwrap() error { return ErrRateLimited }

// errorBody is the one shape of every error response.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code      string `json:"code"`
	Message   string `json:"message"`
	Field     string `json:"field"`
	RequestID string `json:"request_id,omitempty"`
	// Errors lists every problem of an invalid recipe (422).
	Errors []recipe.FieldError `json:"errors,omitempty"`
	// QueueLength is the number of queued builds when the queue is full (503).
	QueueLength *int `json:"queue_length,omitempty"`
}

// statusOf is the one place where errors become HTTP statuses and stable codes.
// Anything it does not recognise is an internal error whose details stay in the log.
func statusOf(err error) (int, errorDetail) {
	var (
		fe  *FieldError
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
		ve  *recipe.ValidationError
		qf  *jobs.QueueFullError
		sl  *jobs.SubmitLimitError
	)
	switch {
	case errors.As(err, &ve):
		d := errorDetail{Code: "invalid_recipe", Errors: ve.Errors,
			Message: fmt.Sprintf("the recipe has %d problem(s); each is listed in errors with its field path", len(ve.Errors))}
		if len(ve.Errors) > 0 {
			d.Field = ve.Errors[0].Path
		}
		return http.StatusUnprocessableEntity, d
	case errors.As(err, &qf):
		n := qf.Length
		return http.StatusServiceUnavailable, errorDetail{Code: "queue_full", Message: qf.Error(), QueueLength: &n}
	case errors.As(err, &sl):
		return http.StatusTooManyRequests, errorDetail{Code: "build_limit", Message: sl.Error()}
	case errors.Is(err, store.ErrBuildNotFound):
		return http.StatusNotFound, errorDetail{Code: "not_found", Message: "no such build (or artifact); build ids are UUIDs as returned by POST /api/v1/builds"}
	case errors.Is(err, store.ErrBuildFinished):
		return http.StatusConflict, errorDetail{Code: "build_finished", Message: "the build has already ended; there is nothing to cancel"}
	case errors.Is(err, ErrUnsupportedMediaType):
		return http.StatusUnsupportedMediaType, errorDetail{Code: "unsupported_media_type", Message: err.Error(), Field: "Content-Type"}
	case errors.Is(err, ErrGone):
		return http.StatusGone, errorDetail{Code: "gone", Message: err.Error()}
	case errors.Is(err, ErrNoBuildService):
		return http.StatusServiceUnavailable, errorDetail{Code: "builds_unavailable", Message: err.Error()}
	case errors.As(err, &fe):
		return http.StatusBadRequest, errorDetail{Code: "invalid_field", Message: fe.Reason, Field: fe.Field}
	case errors.As(err, &mbe), errors.Is(err, ErrBodyTooLarge):
		msg := "request body too large"
		if mbe != nil {
			msg = fmt.Sprintf("request body too large: at most %d bytes are accepted", mbe.Limit)
		}
		return http.StatusRequestEntityTooLarge, errorDetail{Code: "body_too_large", Message: msg}
	case errors.As(err, &se):
		return http.StatusBadRequest, errorDetail{Code: "invalid_json", Message: fmt.Sprintf("body is not valid JSON (at byte %d)", se.Offset)}
	case errors.Is(err, ErrInvalidJSON):
		return http.StatusBadRequest, errorDetail{Code: "invalid_json", Message: err.Error()}
	case errors.As(err, &ute):
		return http.StatusBadRequest, errorDetail{Code: "invalid_field", Message: fmt.Sprintf("want a %s", ute.Type), Field: ute.Field}
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, errorDetail{Code: "invalid_request", Message: err.Error()}
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, errorDetail{Code: "not_found", Message: err.Error()}
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, errorDetail{Code: "method_not_allowed", Message: err.Error()}
	case errors.Is(err, ErrHostNotAllowed):
		return http.StatusBadRequest, errorDetail{Code: "host_not_allowed", Message: err.Error(), Field: "Host"}
	case errors.Is(err, ErrCrossOrigin):
		return http.StatusForbidden, errorDetail{Code: "cross_origin", Message: err.Error(), Field: "Origin"}
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests, errorDetail{Code: "rate_limited", Message: err.Error()}
	case errors.Is(err, ErrNotReady):
		return http.StatusServiceUnavailable, errorDetail{Code: "not_ready", Message: err.Error()}
	case errors.Is(err, store.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, errorDetail{Code: "unavailable", Message: "the database is not answering; try again shortly"}
	default:
		return http.StatusInternalServerError, errorDetail{Code: "internal", Message: "internal error; quote the request id when reporting it"}
	}
}

// writeError answers with err in the one error shape, logging server-side failures.
func writeError(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	status, d := statusOf(err)
	d.RequestID = requestIDFrom(r.Context())
	if status >= 500 && status != http.StatusServiceUnavailable {
		logger.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("request_id", d.RequestID), slog.String("error", err.Error()))
	}
	var (
		rl *rateLimitError
		qf *jobs.QueueFullError
		sl *jobs.SubmitLimitError
	)
	switch {
	case errors.As(err, &rl):
		w.Header().Set("Retry-After", strconv.Itoa(rl.retryAfter))
	case errors.As(err, &qf):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(qf.RetryAfter))))
	case errors.As(err, &sl):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, ceilSeconds(sl.RetryAfter))))
	}
	writeJSON(w, status, errorBody{Error: d})
}

// writeJSON answers with v as JSON. API answers are never cached by shared caches.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types reach here; failing to encode one is a bug.
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"response encoding failed","field":""}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// decodeJSON reads a JSON body into v, rejecting unknown fields and trailing data.
// Its errors map to 400/413 through statusOf.
func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		var se *json.SyntaxError
		var ute *json.UnmarshalTypeError
		if errors.As(err, &mbe) || errors.As(err, &se) || errors.As(err, &ute) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the body is empty; send a JSON object", ErrInvalidJSON)
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: it ends in the middle of a value", ErrInvalidJSON)
		}
		return fmt.Errorf("%w: body is not the expected JSON: %v", ErrInvalid, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: body holds more than one JSON value", ErrInvalid)
	}
	return nil
}
