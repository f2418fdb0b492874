// Package pgtest starts private, throw-away PostgreSQL clusters from the system's
// PostgreSQL binaries, for tests and for local development.
//
// A cluster listens on a unix socket inside its own folder only (no TCP port, so clusters
// never collide), trusts local connections, and runs with durability turned off because its
// data is disposable. initdb refuses to run as root, so when the caller is root the server
// runs as the "postgres" system user.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrNoBinaries means the PostgreSQL server programs (initdb, postgres) were not found.
var ErrNoBinaries = errors.New("pgtest: PostgreSQL server binaries not found (install the Debian package \"postgresql\")")

// Superuser is the role that owns every cluster started here.
const Superuser = "postgres"

// Options configure a cluster. The zero value starts a throw-away cluster in a new
// temporary folder that Close removes.
type Options struct {
	// Dir holds the cluster (data, socket, log). If it already holds an initialised
	// cluster, that cluster is reused: development servers keep their data between runs.
	// Empty means a new temporary folder (in /dev/shm when available), removed by Close.
	Dir string
	// BinDir holds initdb and postgres. Empty means $DEBATE_PG_BIN, else the newest
	// /usr/lib/postgresql/*/bin.
	BinDir string
	// Settings are extra server settings (-c name=value), e.g. max_connections.
	Settings map[string]string
}

// Cluster is a running (or stopped) private PostgreSQL server.
type Cluster struct {
	dir     string
	temp    bool
	binDir  string
	sockDir string
	dataDir string
	logPath string
	cred    *syscall.Credential
	args    []string

	cmd  *exec.Cmd
	done chan struct{} // closed when the server process has exited
}

// FindBinDir returns the folder holding initdb and postgres, or ErrNoBinaries.
func FindBinDir() (string, error) {
	if d := os.Getenv("DEBATE_PG_BIN"); d != "" {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
		return "", fmt.Errorf("%w in DEBATE_PG_BIN=%s", ErrNoBinaries, d)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	// Newest major version first: the folder names are numbers.
	sort.Slice(dirs, func(i, j int) bool { return majorOf(dirs[i]) > majorOf(dirs[j]) })
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoBinaries
}

func majorOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start initialises (if needed) and starts a cluster, waiting until it accepts connections.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	binDir := opts.BinDir
	if binDir == "" {
		d, err := FindBinDir()
		if err != nil {
			return nil, err
		}
		binDir = d
	}
	c := &Cluster{binDir: binDir}

	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	c.cred = cred

	if opts.Dir == "" {
		d, err := os.MkdirTemp(tempParent(), "debate-pg-")
		if err != nil {
			return nil, fmt.Errorf("pgtest: temp dir: %w", err)
		}
		c.dir, c.temp = d, true
	} else {
		d, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		c.dir = d
	}
	if err := c.checkReachable(); err != nil {
		c.cleanupTemp()
		return nil, err
	}
	c.dataDir = filepath.Join(c.dir, "data")
	c.sockDir = filepath.Join(c.dir, "sock")
	c.logPath = filepath.Join(c.dir, "postgres.log")
	// The socket path must fit in sun_path (108 bytes) with "/.s.PGSQL.5432" appended.
	if len(c.sockDir)+len("/.s.PGSQL.5432") >= 108 {
		c.cleanupTemp()
		return nil, fmt.Errorf("pgtest: folder %s is too deep for a unix socket path; use a shorter one", c.dir)
	}
	for _, d := range []string{c.dir, c.sockDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			c.cleanupTemp()
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		if err := c.own(d); err != nil {
			c.cleanupTemp()
			return nil, err
		}
	}

	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := c.initdb(ctx); err != nil {
			c.cleanupTemp()
			return nil, err
		}
	}

	c.args = []string{"-D", c.dataDir, "-k", c.sockDir, "-c", "listen_addresses=",
		// Disposable data: durability costs time and buys nothing here.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"}
	keys := make([]string, 0, len(opts.Settings))
	for k := range opts.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		c.args = append(c.args, "-c", k+"="+opts.Settings[k])
	}

	if err := c.Start(ctx); err != nil {
		c.cleanupTemp()
		return nil, err
	}
	return c, nil
}

// tempParent is where throw-away clusters go: memory (/dev/shm) when the machine has it,
// since creating a database there is ten times faster than on disk and the data is
// disposable anyway; else the usual temporary folder.
func tempParent() string {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".debate-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return ""
}

// serverCredential returns the user to run the server as: "postgres" when we are root
// (PostgreSQL refuses to run as root), nil (ourselves) otherwise.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the \"postgres\" system user (installed with the postgresql package): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// checkReachable makes sure the server's user can walk down to the cluster folder: a
// parent folder closed to others fails later with a less helpful "permission denied".
func (c *Cluster) checkReachable() error {
	if c.cred == nil {
		return nil
	}
	for d := filepath.Dir(c.dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgtest: %w", err)
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if st.Mode().Perm()&0o001 == 0 && !(ok && sys.Uid == c.cred.Uid) {
			return fmt.Errorf("pgtest: the postgres user cannot reach %s: folder %s is closed to other users (chmod o+x %s, or use another folder)", c.dir, d, d)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// own hands a path to the server's user when we run as root.
func (c *Cluster) own(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.Dir = c.dir
	return cmd
}

func (c *Cluster) initdb(ctx context.Context) error {
	cmd := c.command(ctx, "initdb", "-D", c.dataDir, "-U", Superuser, "--auth=trust",
		"-E", "UTF8", "--no-locale", "--no-sync")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %w\n%s", err, out)
	}
	return nil
}

// Start starts the server of a stopped cluster and waits until it accepts connections.
func (c *Cluster) Start(ctx context.Context) error {
	if c.running() {
		return nil
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: log: %w", err)
	}
	defer logf.Close()
	// Not CommandContext: the server must outlive the context that started it.
	cmd := c.command(context.Background(), "postgres", c.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, so that a terminal's Ctrl-C reaches our process (which then
	// stops the server in order) and not the server directly; and killed with us if we die.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGINT
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c.cmd, c.done = cmd, done

	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, c.ConnString("postgres"))
		cancel()
		if err == nil {
			_ = conn.Close(ctx)
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("pgtest: postgres exited during start-up; log %s:\n%s", c.logPath, c.logTail())
		case <-ctx.Done():
			_ = c.Stop()
			return fmt.Errorf("pgtest: waiting for postgres: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = c.Stop()
			return fmt.Errorf("pgtest: postgres did not accept connections within 60s: %w; log:\n%s", err, c.logTail())
		}
	}
}

func (c *Cluster) running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

func (c *Cluster) logTail() string {
	b, _ := os.ReadFile(c.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Stop shuts the server down (fast shutdown: open sessions are cut) and waits for it.
// The data stays; Start brings the same cluster back.
func (c *Cluster) Stop() error {
	if !c.running() {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
		return nil
	case <-time.After(30 * time.Second):
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("pgtest: postgres did not stop within 30s and was killed")
}

// Close stops the server and, for a temporary cluster, removes its folder.
func (c *Cluster) Close() error {
	err := c.Stop()
	c.cleanupTemp()
	return err
}

func (c *Cluster) cleanupTemp() {
	if c.temp {
		_ = os.RemoveAll(c.dir)
	}
}

// Dir is the cluster's folder.
func (c *Cluster) Dir() string { return c.dir }

// ConnString is a connection URL for database db on this cluster's socket.
func (c *Cluster) ConnString(db string) string {
	q := url.Values{}
	q.Set("host", c.sockDir)
	q.Set("user", Superuser)
	q.Set("sslmode", "disable")
	return (&url.URL{Scheme: "postgres", Path: "/" + db, RawQuery: q.Encode()}).String()
}

// CreateDatabase creates an empty database and returns its connection URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	return c.CreateDatabaseFrom(ctx, name, "")
}

// CreateDatabaseFrom creates a database as a copy of template ("" for the default one,
// an empty database) and returns its URL.
func (c *Cluster) CreateDatabaseFrom(ctx context.Context, name, template string) (string, error) {
	if !validName(name) || (template != "" && !validName(template)) {
		return "", fmt.Errorf("pgtest: database names %q, %q: use lower-case letters, digits and _", name, template)
	}
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	stmt := "CREATE DATABASE " + name
	if template != "" {
		stmt += " TEMPLATE " + template
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return "", fmt.Errorf("pgtest: %s: %w", strings.ToLower(stmt), err)
	}
	return c.ConnString(name), nil
}

// EnsureDatabase creates the database unless it already exists, and returns its URL.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("pgtest: database name %q: use lower-case letters, digits and _", name)
	}
	conn, err := pgx.Connect(ctx, c.ConnString("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("pgtest: look up database %s: %w", name, err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return "", fmt.Errorf("pgtest: create database %s: %w", name, err)
		}
	}
	return c.ConnString(name), nil
}

func validName(s string) bool {
	if s == "" || len(s) > 63 || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}
