// Package httpapi is Debate's HTTP API: routes, handlers, the security middleware chain,
// the error → status mapping, TLS set-up and graceful shutdown.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"debate/internal/catalog"
	"debate/internal/config"
	"debate/internal/jobs"
	"debate/internal/resolve"
	"debate/internal/store"
)

// Database is what the API needs of the store.
type Database interface {
	Ping(ctx context.Context) (store.PingResult, error)
	MigrationStatus(ctx context.Context) (store.Status, error)
}

// BackupHealth judges the recorded backups and their verifications (backup.Service), for
// readiness and /metrics.
type BackupHealth interface {
	Health(ctx context.Context) (ok bool, detail string)
	// WriteMetrics writes the backup gauges in the Prometheus text format.
	WriteMetrics(ctx context.Context, w io.Writer) error
}

// Deps are the server's collaborators.
type Deps struct {
	DB      Database
	Logger  *slog.Logger
	Version string // shown by /api/v1/version
	// Backups, when backups are enabled, adds the "backups" readiness check.
	Backups BackupHealth
	// Builds is the build service; nil answers the build routes with 503.
	Builds *jobs.Service
	// Judge raises objections for /api/v1/recipes/check and serves the layer catalog;
	// nil: the embedded catalog, layers judged only (no package index).
	Judge *resolve.Judge
}

// Server is the configured API server. Create it with New, run it with Run or Serve.
type Server struct {
	cfg     *config.Serve
	db      Database
	backups BackupHealth // nil: backups off, no readiness check
	logger  *slog.Logger
	version string
	builds  *jobs.Service // nil: build routes answer 503
	judge   *resolve.Judge
	metrics *httpMetrics

	hsts        string // Strict-Transport-Security value; "" without TLS
	corsOrigins map[string]bool
	csrf        *http.CrossOriginProtection
	limiters    map[string]*limiter // by route group; nil entry: unlimited
	routes      []route
	handler     http.Handler
	tls         *tlsSetup // nil: plain HTTP
}

// New checks the parts of the configuration only the server understands (route groups,
// certificates) and assembles the handler chain.
func New(cfg *config.Serve, deps Deps) (*Server, error) {
	if deps.DB == nil {
		return nil, errors.New("httpapi: no database")
	}
	s := &Server{
		cfg:         cfg,
		db:          deps.DB,
		backups:     deps.Backups,
		logger:      deps.Logger,
		version:     deps.Version,
		builds:      deps.Builds,
		judge:       deps.Judge,
		corsOrigins: map[string]bool{},
		csrf:        http.NewCrossOriginProtection(),
		limiters:    map[string]*limiter{},
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.judge == nil {
		cat, err := catalog.Default()
		if err != nil {
			return nil, err
		}
		s.judge = &resolve.Judge{Catalog: cat, Offline: true}
	}
	for _, o := range cfg.CORSOrigins {
		s.corsOrigins[o] = true
		// An origin trusted for CORS may also make state-changing requests.
		if err := s.csrf.AddTrustedOrigin(o); err != nil {
			return nil, &config.Error{Flag: "--cors-origins", Env: config.EnvName("cors-origins"), Reason: err.Error()}
		}
	}
	groups := routeGroups()
	for g := range cfg.RateLimitGroups {
		if !slices.Contains(groups, g) {
			return nil, &config.Error{Flag: "--rate-limit-group", Env: config.EnvName("rate-limit-group"),
				Reason: fmt.Sprintf("unknown route group %q (known: %s; health routes are never limited)", g, strings.Join(groups, ", "))}
		}
	}
	for _, g := range groups {
		n := cfg.RateLimit
		if v, ok := cfg.RateLimitGroups[g]; ok {
			n = v
		}
		if n > 0 {
			s.limiters[g] = newLimiter(n, time.Minute, cfg.RateLimitClients)
		}
	}
	if cfg.TLS.Mode != config.TLSOff {
		t, err := newTLSSetup(cfg, s.logger)
		if err != nil {
			return nil, err
		}
		s.tls = t
		s.hsts = t.hsts
	}
	s.routes = s.routeTable()
	s.handler = s.buildHandler()
	return s, nil
}

// buildHandler registers the route table and wraps it in the middleware chain (see the
// order documented in middleware.go).
func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	s.metrics = &httpMetrics{}
	for _, rt := range s.routes {
		h := s.bodyLimit(s.handle(rt.handler))
		h = s.crossOrigin(h)
		h = s.rateLimit(s.limiters[rt.group], h)
		h = s.observe(s.metrics.add(rt.method, rt.path), h)
		mux.Handle(rt.method+" "+rt.path, h)
	}
	apiLimiter := s.limiters[groupAPI]
	unmatched := s.metrics.add("", "unmatched")
	router := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern == "" {
			// Unknown paths count against the API limit, so scanning is limited too.
			s.observe(unmatched, s.rateLimit(apiLimiter, s.notFound(h))).ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
	var h http.Handler = router
	h = s.cors(h)
	h = s.trustedHosts(h)
	h = s.securityHeaders(h)
	h = s.recoverPanics(h)
	h = s.accessLog(h)
	h = s.requestInfo(h)
	return h
}

// Handler is the complete handler chain.
func (s *Server) Handler() http.Handler { return s.handler }

// Run listens on the configured addresses and serves until ctx is cancelled.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (--listen): %w", s.cfg.Listen, err)
	}
	var redirectLn net.Listener
	if s.tls != nil && s.cfg.HTTPListen != "" {
		redirectLn, err = net.Listen("tcp", s.cfg.HTTPListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s (--http-listen): %w", s.cfg.HTTPListen, err)
		}
	}
	return s.Serve(ctx, ln, redirectLn)
}

// Serve serves on ln (HTTPS when TLS is configured) and, if redirectLn is not nil, plain
// HTTP redirects on redirectLn, until ctx is cancelled. Then it stops accepting, lets
// in-flight requests finish within the shutdown timeout, and returns. It closes the
// listeners; the caller closes the database afterwards.
func (s *Server) Serve(ctx context.Context, ln, redirectLn net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		// Long downloads and event streams extend their own deadline with
		// http.ResponseController.SetWriteDeadline; everything else must be quick.
		WriteTimeout:   s.cfg.WriteTimeout,
		IdleTimeout:    s.cfg.IdleTimeout,
		MaxHeaderBytes: 64 << 10,
		// Handshake failures from scanners and bad clients are noise at Info.
		ErrorLog: slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
		// In-flight requests keep running during shutdown: their context is not the
		// signal context.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	servers := []*http.Server{srv}
	errc := make(chan error, 2)
	if s.tls != nil {
		srv.TLSConfig = s.tls.config
		go func() { errc <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	if redirectLn != nil {
		port := s.cfg.RedirectPort
		if port == 0 {
			port = ln.Addr().(*net.TCPAddr).Port
		}
		rsrv := &http.Server{
			Handler:           s.requestInfo(s.accessLog(s.securityHeaders(s.redirectHandler(port)))),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       30 * time.Second,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          srv.ErrorLog,
		}
		servers = append(servers, rsrv)
		go func() { errc <- rsrv.Serve(redirectLn) }()
	}
	attrs := []any{slog.String("listen", ln.Addr().String()), slog.String("tls", s.cfg.TLS.Mode.String())}
	if redirectLn != nil {
		attrs = append(attrs, slog.String("http_redirect", redirectLn.Addr().String()))
	}
	if s.tls != nil && s.tls.caPath != "" {
		attrs = append(attrs, slog.String("trust_ca", s.tls.caPath))
	}
	s.logger.Info("serving", attrs...)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("serve: %w", runErr)
	}
	s.logger.Info("shutting down: no new connections; waiting for in-flight requests",
		slog.Duration("timeout", s.cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	errs := []error{runErr}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, hs := range servers {
		wg.Go(func() {
			if err := hs.Shutdown(sctx); err != nil {
				_ = hs.Close()
				mu.Lock()
				errs = append(errs, fmt.Errorf("shutdown: requests still running after %s were cut off: %w", s.cfg.ShutdownTimeout, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		s.logger.Info("stopped")
	}
	return err
}

// redirectHandler answers plain HTTP: ACME challenges (with --tls-auto) and, for every
// other request to an allowed host, a permanent redirect to the same URL over HTTPS.
func (s *Server) redirectHandler(port int) http.Handler {
	suffix := ""
	if port != 443 {
		suffix = ":" + strconv.Itoa(port)
	}
	redirect := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.hostAllowed(r.Host) {
			// Never redirect to a host we do not serve: no open redirect.
			writeError(w, r, s.logger, fmt.Errorf("%w: this server does not answer for %q", ErrHostNotAllowed, r.Host))
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if strings.Contains(host, ":") { // IPv6 literal
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+suffix+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	if s.tls != nil && s.tls.acme != nil {
		// The manager answers /.well-known/acme-challenge/ and hands the rest to redirect.
		return s.tls.acme.HTTPHandler(redirect)
	}
	return redirect
}
