package config

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// TLSMode says where the server's certificate comes from.
type TLSMode int

const (
	// TLSOff serves plain HTTP, e.g. behind a reverse proxy that terminates TLS.
	TLSOff TLSMode = iota
	// TLSFiles loads a certificate and key from files (--tls-cert, --tls-key).
	TLSFiles
	// TLSAuto obtains certificates from an ACME CA (--tls-auto).
	TLSAuto
	// TLSSelfSigned issues a certificate from a local CA created once (--tls-self-signed).
	TLSSelfSigned
)

func (m TLSMode) String() string {
	return [...]string{"off", "files", "auto", "self-signed"}[m]
}

// TLS is the certificate configuration.
type TLS struct {
	Mode     TLSMode
	CertFile string
	KeyFile  string
	// AutoDomains are the names certificates are obtained for (--tls-auto).
	AutoDomains []string
	// ACMEEmail is the contact address given to the ACME CA (optional).
	ACMEEmail string
	// ACMEDirectory is the CA's directory URL; empty means Let's Encrypt.
	ACMEDirectory string
}

// Database is how to reach PostgreSQL.
type Database struct {
	URL      string
	MaxConns int32
}

// Log configures the process logger.
type Log struct {
	Format string // "json" or "text"
	Level  slog.Level
}

// Serve is the validated configuration of `debate serve`.
type Serve struct {
	Listen     string // the HTTPS listener (plain HTTP when TLS is off)
	HTTPListen string // the redirect listener when TLS is on; "" for none
	// RedirectPort is the port written into HTTP→HTTPS redirects; 0 means the port of
	// Listen. Set it when a firewall maps 443 to another port.
	RedirectPort int

	AllowedHosts []string // normalised; may hold "*.example.com"
	TLS          TLS
	StateDir     string // durable folder: ACME cache, local CA

	RateLimit        int            // requests per minute per client; 0 disables
	RateLimitGroups  map[string]int // per route group overrides
	RateLimitClients int            // most clients tracked at once (memory bound)
	TrustedProxies   []netip.Prefix
	CORSOrigins      []string // normalised scheme://host[:port]

	BodyLimit         int64
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration

	// Builds configures build submissions; Build how builds run (with Builds.Workers > 0)
	// and where the artifact store is (always: downloads come from it).
	Builds BuildService
	Build  Build

	Database       Database
	MigrateOnStart bool
	ReadyTools     []string // programs readiness requires on PATH

	// Backup is off unless --backup-dir is set; then the server's jobs take, verify and
	// prune dumps, and readiness reports on them.
	Backup Backup

	Log Log
}

// defaultReadyTools are the programs build workers run; readiness fails without them.
func defaultReadyTools() []string { return []string{"mmdebstrap", "mksquashfs", "xorriso", "bwrap"} }

// maxRate keeps the limiter's per-request interval (a minute / limit) well above zero.
const maxRate = 1_000_000_000

var groupName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ServeFlags declares the flags of `debate serve` on fs and returns a function that, after
// fs.Parse, validates them into a Serve. Split so that -h can print the flags.
func ServeFlags(fs *flag.FlagSet, env Env) func() (*Serve, error) {
	r := &serveRaw{
		allowedHosts: []string{"localhost", "127.0.0.1", "::1"},
		readyTools:   defaultReadyTools(),
	}
	fs.StringVar(&r.listen, "listen", ":8443", "address of the HTTPS listener (plain HTTP when TLS is off)")
	fs.StringVar(&r.httpListen, "http-listen", ":8080", "address of the plain-HTTP listener that redirects to HTTPS (and answers ACME challenges); empty for none")
	fs.IntVar(&r.redirectPort, "redirect-port", 0, "port to put in HTTP→HTTPS redirects (0: the port of --listen; 443 is left out)")
	fs.Var(&listValue{items: &r.allowedHosts}, "allowed-hosts", "comma-separated host names clients may use (Host header); others get 400")
	fs.IntVar(&r.rateLimit, "rate-limit", 100, "requests per minute per client for each route group; 0 turns limiting off")
	fs.Var(&listValue{items: &r.rateLimitGroups}, "rate-limit-group", "per route group limits, e.g. api=300 (requests per minute; 0 = unlimited)")
	fs.IntVar(&r.rateLimitClients, "rate-limit-clients", 100000, "most clients the rate limiter remembers at once (bounds its memory)")
	fs.StringVar(&r.tlsCert, "tls-cert", "", "PEM certificate chain file")
	fs.StringVar(&r.tlsKey, "tls-key", "", "PEM private key file")
	fs.Var(&listValue{items: &r.tlsAuto}, "tls-auto", "comma-separated domains to obtain certificates for from an ACME CA")
	fs.StringVar(&r.acmeEmail, "acme-email", "", "contact e-mail for the ACME account (with --tls-auto)")
	fs.StringVar(&r.acmeDirectory, "acme-directory", "", "ACME directory URL (with --tls-auto; default Let's Encrypt)")
	fs.BoolVar(&r.tlsSelfSigned, "tls-self-signed", false, "issue a certificate from a local CA kept in --state-dir (development)")
	stateDefault, _ := env("STATE_DIRECTORY") // set by systemd's StateDirectory=
	fs.StringVar(&r.stateDir, "state-dir", stateDefault, "durable folder for the ACME cache and the local CA")
	fs.Var(&listValue{items: &r.trustedProxies}, "trusted-proxies", "comma-separated proxy addresses or CIDR blocks whose X-Forwarded-For is believed")
	fs.Var(&listValue{items: &r.corsOrigins}, "cors-origins", "comma-separated origins allowed cross-origin access (none by default)")
	fs.StringVar(&r.bodyLimit, "body-limit", "1MiB", "largest request body accepted")
	fs.DurationVar(&r.readHeaderTimeout, "read-header-timeout", 5*time.Second, "time allowed to read request headers")
	fs.DurationVar(&r.readTimeout, "read-timeout", 30*time.Second, "time allowed to read a whole request")
	fs.DurationVar(&r.writeTimeout, "write-timeout", 60*time.Second, "time allowed to write a response (streams extend their own)")
	fs.DurationVar(&r.idleTimeout, "idle-timeout", 120*time.Second, "how long an idle keep-alive connection stays open")
	fs.DurationVar(&r.shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests may finish after SIGTERM")
	fs.BoolVar(&r.migrateOnStart, "migrate-on-start", false, "apply database migrations before serving")
	fs.Var(&listValue{items: &r.readyTools}, "ready-tools", "programs that must be on PATH for readiness (build tools)")
	buildServiceFlags(fs, &r.builds, env)
	databaseFlags(fs, &r.db)
	logFlags(fs, &r.log)
	backupFlags(fs, &r.backup, backupForServe, "folder the server's daily backups go to; empty: no backups")
	return func() (*Serve, error) { return r.validate(env) }
}

// ParseServe parses `debate serve` arguments and variables into a validated Serve.
func ParseServe(args []string, env Env) (*Serve, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	done := ServeFlags(fs, env)
	if err := parse(fs, args, env, dbAliases()); err != nil {
		return nil, err
	}
	return done()
}

type serveRaw struct {
	listen, httpListen                           string
	redirectPort                                 int
	allowedHosts                                 []string
	rateLimit, rateLimitClients                  int
	rateLimitGroups                              []string
	tlsCert, tlsKey                              string
	tlsAuto                                      []string
	acmeEmail, acmeDirectory                     string
	tlsSelfSigned                                bool
	stateDir                                     string
	trustedProxies, corsOrigins                  []string
	bodyLimit                                    string
	readHeaderTimeout, readTimeout, writeTimeout time.Duration
	idleTimeout, shutdownTimeout                 time.Duration
	migrateOnStart                               bool
	readyTools                                   []string
	builds                                       buildServiceRaw
	db                                           dbRaw
	log                                          logRaw
	backup                                       backupRaw
}

func (r *serveRaw) validate(env Env) (*Serve, error) {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, settingError(flagName, format, args...))
	}
	c := &Serve{
		Listen: r.listen, HTTPListen: r.httpListen, RedirectPort: r.redirectPort,
		RateLimit: r.rateLimit, RateLimitClients: r.rateLimitClients,
		StateDir: r.stateDir, MigrateOnStart: r.migrateOnStart,
		ReadHeaderTimeout: r.readHeaderTimeout, ReadTimeout: r.readTimeout,
		WriteTimeout: r.writeTimeout, IdleTimeout: r.idleTimeout, ShutdownTimeout: r.shutdownTimeout,
		RateLimitGroups: map[string]int{},
	}

	if err := parseAddr(r.listen); err != nil {
		bad("listen", "%v", err)
	}

	// TLS: at most one source of certificates.
	var modes []string
	if r.tlsCert != "" || r.tlsKey != "" {
		modes = append(modes, "--tls-cert/--tls-key")
		c.TLS.Mode = TLSFiles
	}
	if len(r.tlsAuto) > 0 {
		modes = append(modes, "--tls-auto")
		c.TLS.Mode = TLSAuto
	}
	if r.tlsSelfSigned {
		modes = append(modes, "--tls-self-signed")
		c.TLS.Mode = TLSSelfSigned
	}
	if len(modes) > 1 {
		bad("tls-self-signed", "choose one source of certificates, not %s", strings.Join(modes, " and "))
	}
	switch c.TLS.Mode {
	case TLSFiles:
		switch {
		case r.tlsCert == "":
			bad("tls-cert", "required with --tls-key")
		case r.tlsKey == "":
			bad("tls-key", "required with --tls-cert")
		default:
			if _, err := tls.LoadX509KeyPair(r.tlsCert, r.tlsKey); err != nil {
				bad("tls-cert", "cannot load the certificate %s with key %s: %v", r.tlsCert, r.tlsKey, err)
			}
		}
		c.TLS.CertFile, c.TLS.KeyFile = r.tlsCert, r.tlsKey
	case TLSAuto:
		for _, d := range r.tlsAuto {
			d = normalizeHost(d)
			if !validHostname(d, false) {
				bad("tls-auto", "%q is not a domain name (ACME certificates are for public DNS names, no wildcards)", d)
				continue
			}
			c.TLS.AutoDomains = append(c.TLS.AutoDomains, d)
		}
		c.TLS.ACMEEmail, c.TLS.ACMEDirectory = r.acmeEmail, r.acmeDirectory
		if r.acmeDirectory != "" && !strings.HasPrefix(r.acmeDirectory, "https://") {
			bad("acme-directory", "want an https:// URL, got %q", r.acmeDirectory)
		}
	}
	if r.acmeEmail != "" && c.TLS.Mode != TLSAuto {
		bad("acme-email", "only used with --tls-auto")
	}
	if c.TLS.Mode == TLSAuto || c.TLS.Mode == TLSSelfSigned {
		if r.stateDir == "" {
			bad("state-dir", "required with --tls-auto and --tls-self-signed (certificates are kept there)")
		} else if abs, err := filepath.Abs(r.stateDir); err != nil {
			bad("state-dir", "%v", err)
		} else {
			c.StateDir = abs
		}
	}
	if c.TLS.Mode != TLSOff && r.httpListen != "" {
		if err := parseAddr(r.httpListen); err != nil {
			bad("http-listen", "%v", err)
		} else if r.httpListen == r.listen && !strings.HasSuffix(r.listen, ":0") {
			bad("http-listen", "must differ from --listen (%s)", r.listen)
		}
	}
	if c.TLS.Mode == TLSOff {
		c.HTTPListen = "" // nothing to redirect to
	}
	if r.redirectPort < 0 || r.redirectPort > 65535 {
		bad("redirect-port", "want a port from 1 to 65535 (0 = the port of --listen), got %d", r.redirectPort)
	}

	seen := map[string]bool{}
	addHost := func(h string) {
		if !seen[h] {
			seen[h] = true
			c.AllowedHosts = append(c.AllowedHosts, h)
		}
	}
	for _, h := range r.allowedHosts {
		n := normalizeHost(h)
		if _, err := netip.ParseAddr(n); err != nil && !validHostname(n, true) {
			bad("allowed-hosts", "%q is not a host name or IP address (no scheme or port: e.g. debate.example.com)", h)
			continue
		}
		addHost(n)
	}
	for _, d := range c.TLS.AutoDomains {
		addHost(d) // the names we get certificates for are always served
	}
	if len(c.AllowedHosts) == 0 {
		bad("allowed-hosts", "must list at least one host name")
	}

	if r.rateLimit < 0 || r.rateLimit > maxRate {
		bad("rate-limit", "want requests per minute from 0 to %d (0 turns limiting off), got %d", maxRate, r.rateLimit)
	}
	for _, g := range r.rateLimitGroups {
		name, val, ok := strings.Cut(g, "=")
		n, err := strconv.Atoi(strings.TrimSpace(val))
		name = strings.TrimSpace(name)
		if !ok || err != nil || n < 0 || n > maxRate || !groupName.MatchString(name) {
			bad("rate-limit-group", "want group=N with N ≥ 0 requests per minute, e.g. api=300; got %q", g)
			continue
		}
		c.RateLimitGroups[name] = n
	}
	if r.rateLimitClients < 1 {
		bad("rate-limit-clients", "want at least 1, got %d", r.rateLimitClients)
	}

	for _, p := range r.trustedProxies {
		pfx, err := parsePrefix(p)
		if err != nil {
			bad("trusted-proxies", "%v", err)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	for _, o := range r.corsOrigins {
		n, err := parseOrigin(o)
		if err != nil {
			bad("cors-origins", "%v", err)
			continue
		}
		c.CORSOrigins = append(c.CORSOrigins, n)
	}

	if n, err := parseSize(r.bodyLimit); err != nil {
		bad("body-limit", "%v, got %q", err, r.bodyLimit)
	} else if n < 1024 {
		bad("body-limit", "at least 1KiB, got %q", r.bodyLimit)
	} else {
		c.BodyLimit = n
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"read-header-timeout", r.readHeaderTimeout}, {"read-timeout", r.readTimeout},
		{"write-timeout", r.writeTimeout}, {"idle-timeout", r.idleTimeout},
		{"shutdown-timeout", r.shutdownTimeout},
	} {
		if d.v <= 0 {
			bad(d.name, "want a positive duration such as 30s, got %s", d.v)
		}
	}
	if r.readHeaderTimeout > r.readTimeout && r.readTimeout > 0 {
		bad("read-header-timeout", "%s is longer than --read-timeout %s", r.readHeaderTimeout, r.readTimeout)
	}
	for _, tool := range r.readyTools {
		if strings.ContainsAny(tool, "/ \t") {
			bad("ready-tools", "%q: give program names looked up on PATH, not paths", tool)
		}
	}
	c.ReadyTools = r.readyTools

	bs, b, berrs := r.builds.validate(r.stateDir, env)
	errs = append(errs, berrs...)
	c.Builds, c.Build = *bs, *b
	if bs.MetricsListen != "" && bs.MetricsListen == r.listen {
		bad("metrics-listen", "must differ from --listen (%s): metrics stay off the public listener", r.listen)
	}

	db, err := r.db.validate(env)
	if err != nil {
		errs = append(errs, err)
	} else {
		c.Database = *db
	}
	lg, err := r.log.validate()
	if err != nil {
		errs = append(errs, err)
	} else {
		c.Log = *lg
	}
	if bk, err := r.backup.validate(); err != nil {
		errs = append(errs, err)
	} else {
		c.Backup = *bk
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// Migrate is the validated configuration of `debate migrate`.
type Migrate struct {
	Database Database
	Log      Log
}

// ParseMigrate parses `debate migrate` arguments and variables.
func ParseMigrate(args []string, env Env) (*Migrate, error) {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	done := MigrateFlags(fs, env)
	if err := parse(fs, args, env, dbAliases()); err != nil {
		return nil, err
	}
	return done()
}

// MigrateFlags declares the flags of `debate migrate`; see ServeFlags.
func MigrateFlags(fs *flag.FlagSet, env Env) func() (*Migrate, error) {
	var db dbRaw
	var lg logRaw
	databaseFlags(fs, &db)
	logFlags(fs, &lg)
	return func() (*Migrate, error) {
		var errs []error
		d, err := db.validate(env)
		errs = append(errs, err)
		l, err := lg.validate()
		errs = append(errs, err)
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return &Migrate{Database: *d, Log: *l}, nil
	}
}

// ParseFlags runs fs over args and fills unset flags from the environment: for commands
// that declare their flags with ServeFlags or MigrateFlags.
func ParseFlags(fs *flag.FlagSet, args []string, env Env) error {
	return parse(fs, args, env, dbAliases())
}

// dbAliases are the conventional variable names also accepted for the database URL.
func dbAliases() map[string][]string {
	return map[string][]string{
		"database-url":      {"DATABASE_URL"},
		"database-url-file": {"DATABASE_URL_FILE"},
	}
}

type dbRaw struct {
	url, urlFile string
	maxConns     int
}

func databaseFlags(fs *flag.FlagSet, r *dbRaw) {
	fs.StringVar(&r.url, "database-url", "", "PostgreSQL URL (also DATABASE_URL); prefer --database-url-file for passwords")
	fs.StringVar(&r.urlFile, "database-url-file", "", "file holding the PostgreSQL URL (also DATABASE_URL_FILE)")
	fs.IntVar(&r.maxConns, "db-max-conns", 10, "most connections in the database pool")
}

func (r *dbRaw) validate(_ Env) (*Database, error) {
	u, err := secret("database-url", r.url, r.urlFile)
	if err != nil {
		return nil, err
	}
	if u == "" {
		return nil, &Error{Flag: "--database-url", Env: "DATABASE_URL",
			Reason: "required: the PostgreSQL URL, e.g. postgres://debate@localhost/debate"}
	}
	if _, err := pgxpool.ParseConfig(u); err != nil {
		// The inner error only: the outer one repeats the URL, password and all.
		reason := err
		if inner := errors.Unwrap(err); inner != nil {
			reason = inner
		}
		return nil, &Error{Flag: "--database-url", Env: "DATABASE_URL", Reason: fmt.Sprintf("not a valid PostgreSQL URL: %v", reason)}
	}
	if r.maxConns < 1 || r.maxConns > 10000 {
		return nil, settingError("db-max-conns", "want 1 to 10000, got %d", r.maxConns)
	}
	return &Database{URL: u, MaxConns: int32(r.maxConns)}, nil
}

type logRaw struct{ format, level string }

func logFlags(fs *flag.FlagSet, r *logRaw) {
	fs.StringVar(&r.format, "log-format", "json", "log format: json or text")
	fs.StringVar(&r.level, "log-level", "info", "log level: debug, info, warn or error")
}

func (r *logRaw) validate() (*Log, error) {
	if r.format != "json" && r.format != "text" {
		return nil, settingError("log-format", "want json or text, got %q", r.format)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(r.level)); err != nil {
		return nil, settingError("log-level", "want debug, info, warn or error, got %q", r.level)
	}
	return &Log{Format: r.format, Level: lv}, nil
}

// LookupEnv is the process environment as an Env.
func LookupEnv(name string) (string, bool) { return os.LookupEnv(name) }
