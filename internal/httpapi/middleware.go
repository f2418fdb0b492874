package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// The middleware chain, outermost first. The order matters and is tested:
//
//  1. requestInfo     – request id (X-Request-Id) and client address, for everything below
//  2. accessLog       – one structured line per request, whatever answered it
//  3. recoverPanics   – a panic becomes a 500 naming the request id; the stack stays in the log
//  4. securityHeaders – set before anything can answer, so every response carries them,
//                       the 400/403/404/429/500 ones included
//  5. trustedHosts    – a Host outside the allow-list gets 400 before any routing
//  6. cors            – answers preflights, marks allowed origins; nothing allowed by default
//  -- routing: the route's group decides the rate limit --
//  7. rateLimit       – per client and route group; health routes are exempt
//  8. crossOrigin     – state-changing requests from other origins get 403
//  9. bodyLimit       – bodies above the limit get 413
//  10. the handler

type ctxKey int

const infoKey ctxKey = 0

// requestInfo is what the chain learns about a request, shared through its context.
type requestInfo struct {
	id     string
	client netip.Addr
}

func requestIDFrom(ctx context.Context) string {
	if ri, ok := ctx.Value(infoKey).(*requestInfo); ok {
		return ri.id
	}
	return ""
}

func clientFrom(ctx context.Context) netip.Addr {
	if ri, ok := ctx.Value(infoKey).(*requestInfo); ok {
		return ri.client
	}
	return netip.Addr{}
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return hex.EncodeToString(b[:])
}

// validRequestID accepts ids a trusted proxy made: short and log-safe.
func validRequestID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func (s *Server) requestInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := &requestInfo{client: clientAddr(r, s.cfg.TrustedProxies)}
		// A proxy we trust may have started the id already; keep it so logs line up.
		if id := r.Header.Get("X-Request-Id"); validRequestID(id) && isTrusted(peerAddr(r), s.cfg.TrustedProxies) {
			ri.id = id
		} else {
			ri.id = newRequestID()
		}
		w.Header().Set("X-Request-Id", ri.id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), infoKey, ri)))
	})
}

// statusWriter remembers what was answered, for the log and for panic recovery.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush lets streaming handlers push data through the wrapper.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection (deadlines for streams).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ReadFrom keeps io.Copy's fast path (sendfile on plain HTTP) through the wrapper, for
// downloads of large files.
func (w *statusWriter) ReadFrom(src io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, src)
	}
	w.bytes += n
	return n, err
}

func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			// Also on a panic that escapes (http.ErrAbortHandler): the line is still written.
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			ri, _ := r.Context().Value(infoKey).(*requestInfo)
			id, client := "", ""
			if ri != nil {
				id, client = ri.id, ri.client.String()
			}
			// The path only: query strings may carry tokens.
			s.logger.LogAttrs(r.Context(), level, "request",
				slog.String("request_id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", status),
				slog.Int64("bytes", sw.bytes),
				slog.Float64("duration_ms", math.Round(float64(time.Since(start).Microseconds()))/1000),
				slog.String("client", client),
				slog.String("proto", r.Proto),
				slog.String("user_agent", r.UserAgent()),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v) // the handler chose to abort the connection
			}
			s.logger.LogAttrs(r.Context(), slog.LevelError, "panic",
				slog.String("request_id", requestIDFrom(r.Context())),
				slog.String("panic", fmt.Sprint(v)),
				slog.String("stack", string(debug.Stack())))
			if sw, ok := w.(*statusWriter); ok && sw.status != 0 {
				// Part of the answer is out: cutting the connection is all that is left.
				panic(http.ErrAbortHandler)
			}
			writeError(w, r, s.logger, fmt.Errorf("panic: %v", v))
		}()
		next.ServeHTTP(w, r)
	})
}

// contentSecurityPolicy allows the API and a future same-origin web interface, and
// nothing else: no inline script, no framing, no plugins, no foreign form targets.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const permissionsPolicy = "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), " +
	"gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=()"

func (s *Server) securityHeaders(next http.Handler) http.Handler {
	// Built once: these run on every request. The keys are in canonical form, so they
	// can go into the header map directly; Set would allocate a new slice each time.
	fixed := []struct {
		key string
		val []string
	}{
		{"Content-Security-Policy", []string{contentSecurityPolicy}},
		{"X-Content-Type-Options", []string{"nosniff"}},
		{"X-Frame-Options", []string{"DENY"}},
		{"Referrer-Policy", []string{"no-referrer"}},
		{"Permissions-Policy", []string{permissionsPolicy}},
		{"Cross-Origin-Opener-Policy", []string{"same-origin"}},
	}
	hsts := []string{s.hsts}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if s.hsts != "" && s.viaHTTPS(r) {
			h["Strict-Transport-Security"] = hsts
		}
		for _, f := range fixed {
			// Shared slices of length and capacity 1: Add appends into a new array.
			h[f.key] = f.val[:1:1]
		}
		next.ServeHTTP(w, r)
	})
}

// viaHTTPS reports whether the client reached us over HTTPS: directly, or through a
// trusted proxy that says so.
func (s *Server) viaHTTPS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return isTrusted(peerAddr(r), s.cfg.TrustedProxies) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// hostAllowed matches a Host header (port ignored) against the allow-list.
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	if host == "" {
		return false
	}
	for _, h := range s.cfg.AllowedHosts {
		if h == host {
			return true
		}
		if rest, ok := strings.CutPrefix(h, "*."); ok && strings.HasSuffix(host, "."+rest) {
			return true
		}
	}
	return false
}

func (s *Server) trustedHosts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			writeError(w, r, s.logger, fmt.Errorf("%w: this server does not answer for %q; use one of its configured host names", ErrHostNotAllowed, r.Host))
			return
		}
		next.ServeHTTP(w, r)
	})
}

const (
	corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"
	corsHeaders = "Content-Type, Authorization, X-Request-Id"
	corsExpose  = "X-Request-Id, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, RateLimit-Policy"
)

func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		h := w.Header()
		if len(s.corsOrigins) > 0 {
			// Answers differ by Origin: caches must keep them apart.
			h.Add("Vary", "Origin")
		}
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		allowed := s.corsOrigins[strings.ToLower(origin)]
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			if !allowed {
				writeError(w, r, s.logger, fmt.Errorf("%w: origin %s is not in this server's CORS allow-list", ErrCrossOrigin, origin))
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", corsMethods)
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if allowed {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", corsExpose)
		}
		next.ServeHTTP(w, r)
	})
}

// rateLimit applies a group's limiter (nil: unlimited) per client.
func (s *Server) rateLimit(l *limiter, next http.Handler) http.Handler {
	if l == nil {
		return next
	}
	limit := strconv.Itoa(l.limit)
	policy := fmt.Sprintf("%d;w=%d", l.limit, int(l.period.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := l.allow(limitKey(clientFrom(r.Context())), time.Now())
		h := w.Header()
		h.Set("RateLimit-Limit", limit)
		h.Set("RateLimit-Remaining", strconv.Itoa(d.remaining))
		h.Set("RateLimit-Reset", strconv.Itoa(ceilSeconds(d.reset)))
		h.Set("RateLimit-Policy", policy)
		if !d.allowed {
			writeError(w, r, s.logger, &rateLimitError{limit: l.limit, retryAfter: max(1, ceilSeconds(d.retryAfter))})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func ceilSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// crossOrigin refuses state-changing requests a browser sent from another origin
// (Sec-Fetch-Site, else Origin against Host); origins in the CORS allow-list pass.
func (s *Server) crossOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.csrf.Check(r); err != nil {
			writeError(w, r, s.logger, fmt.Errorf("%w: %v", ErrCrossOrigin, err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) bodyLimit(next http.Handler) http.Handler {
	limit := s.cfg.BodyLimit
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > limit {
			writeError(w, r, s.logger, &http.MaxBytesError{Limit: limit})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}
