package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"unicode"

	"github.com/jackc/pgx/v5"
)

// tools are the PostgreSQL client programs of one major version.
type tools struct {
	dump, restore string
	major         int
	version       string // e.g. "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
}

var toolVersion = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.\d+)*`)

// probe runs pg_dump --version in dir ("" for PATH) and returns the tools found there.
func probe(ctx context.Context, dir string) (tools, error) {
	name := func(p string) string {
		if dir == "" {
			return p
		}
		return filepath.Join(dir, p)
	}
	t := tools{dump: name("pg_dump"), restore: name("pg_restore")}
	for _, p := range []string{t.dump, t.restore} {
		if _, err := exec.LookPath(p); err != nil {
			return t, fmt.Errorf("%w: %s not found", ErrToolMissing, p)
		}
	}
	out, err := exec.CommandContext(ctx, t.dump, "--version").Output()
	if err != nil {
		return t, fmt.Errorf("%w: %s --version: %w", ErrToolMissing, t.dump, err)
	}
	m := toolVersion.FindStringSubmatch(string(out))
	if m == nil {
		return t, fmt.Errorf("%w: %s --version printed %q, not a PostgreSQL version", ErrToolMissing, t.dump, strings.TrimSpace(string(out)))
	}
	t.major, _ = strconv.Atoi(m[1])
	t.version = strings.TrimSpace(string(out))
	return t, nil
}

// findTools picks pg_dump and pg_restore for a server of major version serverMajor: the
// folder given (override), else the Debian folder of that very version, else a newer
// version's folder, else PATH. pg_dump refuses to dump a server newer than itself, so an
// older client is an error that says what to install.
func findTools(ctx context.Context, override string, serverMajor int) (tools, error) {
	check := func(t tools) (tools, error) {
		if t.major < serverMajor {
			return t, fmt.Errorf("%w: %s is version %d but the server is PostgreSQL %d: install postgresql-client-%d (or point --pg-bin at a folder with version %d or newer)",
				ErrToolMissing, t.dump, t.major, serverMajor, serverMajor, serverMajor)
		}
		return t, nil
	}
	if override != "" {
		t, err := probe(ctx, override)
		if err != nil {
			return t, fmt.Errorf("%w (--pg-bin %s)", err, override)
		}
		return check(t)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	majorOf := func(d string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		return n
	}
	// The server's own version first, then newer ones from the oldest up.
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) < majorOf(dirs[j]) })
	for _, d := range dirs {
		if majorOf(d) < serverMajor {
			continue
		}
		if t, err := probe(ctx, d); err == nil && t.major >= serverMajor {
			return t, nil
		}
	}
	t, err := probe(ctx, "")
	if err != nil {
		return t, fmt.Errorf("%w; install postgresql-client-%d or set --pg-bin", err, serverMajor)
	}
	return check(t)
}

// libpqEnv turns a pgx connection string into the environment of a libpq program: no
// password on the command line (other users can read it there), and none of pgx's own
// parameters, which libpq refuses. database overrides the database name when not empty.
func libpqEnv(connString, database string) ([]string, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		reason := errors.Unwrap(err)
		if reason == nil {
			reason = errors.New("cannot be parsed")
		}
		return nil, fmt.Errorf("database URL: %v", reason)
	}
	if database == "" {
		database = cfg.Database
	}
	var env []string
	for _, kv := range os.Environ() {
		// Settings of the caller's shell (PGSERVICE, PGOPTIONS, …) must not change which
		// database is dumped.
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	add := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	add("PGHOST", cfg.Host)
	if cfg.Port != 0 {
		add("PGPORT", strconv.Itoa(int(cfg.Port)))
	}
	add("PGUSER", cfg.User)
	add("PGPASSWORD", cfg.Password)
	add("PGDATABASE", database)
	add("PGAPPNAME", "debate-backup")
	params := connParams(connString)
	for k, e := range map[string]string{
		"sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT",
		"sslkey": "PGSSLKEY", "sslcrl": "PGSSLCRL", "connect_timeout": "PGCONNECT_TIMEOUT",
	} {
		add(e, params[k])
	}
	env = append(env, "LC_ALL=C", "TZ=UTC")
	return env, nil
}

// connParams reads the key/value parameters of a connection string, URL or "k=v" form;
// only the TLS and timeout ones are used (pgx has already parsed the rest).
func connParams(s string) map[string]string {
	out := map[string]string{}
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return out
		}
		for k, v := range u.Query() {
			if len(v) > 0 {
				out[k] = v[0]
			}
		}
		return out
	}
	// key = value pairs; values may be single-quoted with backslash escapes.
	rs := []rune(s)
	for i := 0; i < len(rs); {
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
		start := i
		for i < len(rs) && rs[i] != '=' && !unicode.IsSpace(rs[i]) {
			i++
		}
		key := string(rs[start:i])
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
		if i >= len(rs) || rs[i] != '=' {
			break
		}
		i++
		for i < len(rs) && unicode.IsSpace(rs[i]) {
			i++
		}
		var val strings.Builder
		if i < len(rs) && rs[i] == '\'' {
			i++
			for i < len(rs) && rs[i] != '\'' {
				if rs[i] == '\\' && i+1 < len(rs) {
					i++
				}
				val.WriteRune(rs[i])
				i++
			}
			i++
		} else {
			for i < len(rs) && !unicode.IsSpace(rs[i]) {
				if rs[i] == '\\' && i+1 < len(rs) {
					i++
				}
				val.WriteRune(rs[i])
				i++
			}
		}
		if key != "" {
			out[key] = val.String()
		}
	}
	return out
}

// conninfoDB is a libpq connection string naming only a database, for -d: the rest comes
// from the environment. Quoted, so no database name can smuggle in other parameters.
func conninfoDB(name string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "dbname='" + r.Replace(name) + "'"
}

// tail keeps the last max bytes written: the end of a tool's error output.
type tail struct {
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.buf)) }

// runTool runs a PostgreSQL client program with stdin/stdout as given and turns a failure
// into an error carrying the end of its error output.
func runTool(ctx context.Context, env []string, stdin io.Reader, stdout io.Writer, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = env
	cmd.Stdin = stdin
	cmd.Stdout = stdout
	errOut := &tail{max: 4096}
	cmd.Stderr = errOut
	// Killed with us: a pg_dump left running would hold the snapshot's locks.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s stopped: %w", filepath.Base(prog), ctx.Err())
		}
		msg := errOut.String()
		if msg == "" {
			msg = "no error output"
		}
		return fmt.Errorf("%s failed (%v): %s", filepath.Base(prog), err, msg)
	}
	return nil
}
