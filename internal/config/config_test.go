package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) Env {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const dbURL = "postgres://debate@localhost/debate"

func TestServeDefaults(t *testing.T) {
	c, err := ParseServe(nil, envOf(map[string]string{"DATABASE_URL": dbURL}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8443" || c.RateLimit != 100 || c.TLS.Mode != TLSOff || c.BodyLimit != 1<<20 {
		t.Fatalf("defaults: %+v", c)
	}
	if c.HTTPListen != "" {
		t.Errorf("redirect listener %q without TLS: nothing to redirect to", c.HTTPListen)
	}
	if strings.Join(c.AllowedHosts, ",") != "localhost,127.0.0.1,::1" {
		t.Errorf("allowed hosts %v", c.AllowedHosts)
	}
	if len(c.CORSOrigins) != 0 || len(c.TrustedProxies) != 0 {
		t.Errorf("CORS %v and proxies %v must be empty by default", c.CORSOrigins, c.TrustedProxies)
	}
	if c.Database.URL != dbURL || c.Log.Format != "json" {
		t.Errorf("db %+v log %+v", c.Database, c.Log)
	}
}

func TestFlagsWinOverEnvWinsOverDefault(t *testing.T) {
	env := envOf(map[string]string{
		"DATABASE_URL":            dbURL,
		"DEBATE_RATE_LIMIT":       "7",
		"DEBATE_LISTEN":           "127.0.0.1:9000",
		"DEBATE_ALLOWED_HOSTS":    "Debate.Example.com.,[::1]",
		"DEBATE_TRUSTED_PROXIES":  "10.0.0.0/8, 192.168.1.7",
		"DEBATE_CORS_ORIGINS":     "https://App.example.com/",
		"DEBATE_SHUTDOWN_TIMEOUT": "5s",
		"DEBATE_TLS_SELF_SIGNED":  "true",
		"DEBATE_STATE_DIR":        "/var/lib/debate",
	})
	c, err := ParseServe([]string{"--rate-limit", "9", "--rate-limit-group", "api=300"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.RateLimit != 9 {
		t.Errorf("flag should win: rate limit %d", c.RateLimit)
	}
	if c.Listen != "127.0.0.1:9000" || c.ShutdownTimeout != 5*time.Second {
		t.Errorf("env not applied: %+v", c)
	}
	if got := strings.Join(c.AllowedHosts, ","); got != "debate.example.com,::1" {
		t.Errorf("allowed hosts normalised to %q", got)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32")}
	if len(c.TrustedProxies) != 2 || c.TrustedProxies[0] != want[0] || c.TrustedProxies[1] != want[1] {
		t.Errorf("trusted proxies %v", c.TrustedProxies)
	}
	if len(c.CORSOrigins) != 1 || c.CORSOrigins[0] != "https://app.example.com" {
		t.Errorf("CORS origins %v", c.CORSOrigins)
	}
	if c.TLS.Mode != TLSSelfSigned || c.StateDir != "/var/lib/debate" || c.HTTPListen != ":8080" {
		t.Errorf("tls %+v state %q http %q", c.TLS, c.StateDir, c.HTTPListen)
	}
	if c.RateLimitGroups["api"] != 300 {
		t.Errorf("groups %v", c.RateLimitGroups)
	}
}

func TestDatabaseURLFromFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "db")
	if err := os.WriteFile(f, []byte("postgres://debate:s3cret@db/debate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ParseServe(nil, envOf(map[string]string{"DEBATE_DATABASE_URL_FILE": f}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL != "postgres://debate:s3cret@db/debate" {
		t.Fatalf("url %q", c.Database.URL)
	}
	_, err = ParseServe([]string{"--database-url", dbURL, "--database-url-file", f}, envOf(nil))
	if err == nil || !strings.Contains(err.Error(), "--database-url-file") {
		t.Fatalf("both set: %v", err)
	}
	_, err = ParseServe(nil, envOf(map[string]string{"DATABASE_URL_FILE": "/nonexistent/db"}))
	if err == nil || !strings.Contains(err.Error(), "--database-url-file") || !strings.Contains(err.Error(), "/nonexistent/db") {
		t.Fatalf("missing file: %v", err)
	}
}

// Every bad setting stops start-up with an error that names it.
func TestErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	bogus := filepath.Join(dir, "bogus.pem")
	if err := os.WriteFile(bogus, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--listen", "nope"}, want: "--listen"},
		{args: []string{"--listen", ":99999"}, want: "--listen"},
		{args: []string{"--rate-limit", "-1"}, want: "--rate-limit"},
		{args: []string{"--rate-limit", "99999999999"}, want: "--rate-limit"},
		{args: []string{"--rate-limit", "lots"}, want: "-rate-limit"},
		{env: map[string]string{"DEBATE_RATE_LIMIT": "lots"}, want: "DEBATE_RATE_LIMIT"},
		{args: []string{"--rate-limit-group", "api"}, want: "--rate-limit-group"},
		{args: []string{"--rate-limit-group", "API=3"}, want: "--rate-limit-group"},
		{args: []string{"--rate-limit-clients", "0"}, want: "--rate-limit-clients"},
		{args: []string{"--allowed-hosts", "https://example.com"}, want: "--allowed-hosts"},
		{args: []string{"--allowed-hosts", "example.com:8443"}, want: "--allowed-hosts"},
		{args: []string{"--trusted-proxies", "10.0.0.0/33"}, want: "--trusted-proxies"},
		{args: []string{"--trusted-proxies", "proxy.local"}, want: "--trusted-proxies"},
		{args: []string{"--cors-origins", "*"}, want: "--cors-origins"},
		{args: []string{"--cors-origins", "https://a.example/path"}, want: "--cors-origins"},
		{args: []string{"--cors-origins", "a.example"}, want: "--cors-origins"},
		{args: []string{"--body-limit", "ten"}, want: "--body-limit"},
		{args: []string{"--body-limit", "10"}, want: "--body-limit"},
		{args: []string{"--shutdown-timeout", "0s"}, want: "--shutdown-timeout"},
		{args: []string{"--read-header-timeout", "1m", "--read-timeout", "10s"}, want: "--read-header-timeout"},
		{args: []string{"--tls-cert", bogus}, want: "--tls-key"},
		{args: []string{"--tls-cert", bogus, "--tls-key", bogus}, want: "--tls-cert"},
		{args: []string{"--tls-self-signed", "--tls-auto", "debate.example.com", "--state-dir", dir}, want: "choose one"},
		{args: []string{"--tls-self-signed"}, want: "--state-dir"},
		{args: []string{"--tls-auto", "*.example.com", "--state-dir", dir}, want: "--tls-auto"},
		{args: []string{"--tls-auto", "debate.example.com", "--state-dir", dir, "--acme-directory", "http://x"}, want: "--acme-directory"},
		{args: []string{"--acme-email", "a@b.c"}, want: "--acme-email"},
		{args: []string{"--tls-self-signed", "--state-dir", dir, "--http-listen", ":8443"}, want: "--http-listen"},
		{args: []string{"--redirect-port", "70000"}, want: "--redirect-port"},
		{args: []string{"--ready-tools", "/usr/bin/xorriso"}, want: "--ready-tools"},
		{args: []string{"--log-format", "xml"}, want: "--log-format"},
		{args: []string{"--log-level", "loud"}, want: "--log-level"},
		{args: []string{"--db-max-conns", "0"}, want: "--db-max-conns"},
		{args: []string{"stray"}, want: "unexpected argument"},
		{args: []string{"--no-such-flag"}, want: "no-such-flag"},
		{env: map[string]string{}, want: "DATABASE_URL"},
		{env: map[string]string{"DATABASE_URL": "postgres://u:hunter2@host:notaport/db"}, want: "DATABASE_URL"},
	}
	for _, tc := range cases {
		env := tc.env
		if env == nil {
			env = map[string]string{"DATABASE_URL": dbURL}
		}
		_, err := ParseServe(tc.args, envOf(env))
		if err == nil {
			t.Errorf("%v %v: accepted", tc.args, tc.env)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v %v: error %q does not name %s", tc.args, tc.env, err, tc.want)
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%v: error %v does not wrap ErrInvalid", tc.args, err)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the database password: %v", err)
		}
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	_, err := ParseServe([]string{"--rate-limit", "-5", "--listen", "x"}, envOf(nil))
	for _, want := range []string{"--rate-limit", "--listen", "DATABASE_URL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func TestTLSAutoDomainsAreAllowedHosts(t *testing.T) {
	c, err := ParseServe([]string{"--tls-auto", "Debate.Example.org", "--state-dir", t.TempDir()},
		envOf(map[string]string{"DATABASE_URL": dbURL}))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS.Mode != TLSAuto || c.TLS.AutoDomains[0] != "debate.example.org" {
		t.Fatalf("%+v", c.TLS)
	}
	found := false
	for _, h := range c.AllowedHosts {
		found = found || h == "debate.example.org"
	}
	if !found {
		t.Errorf("ACME domain not in allowed hosts %v", c.AllowedHosts)
	}
}

func TestMigrateConfig(t *testing.T) {
	c, err := ParseMigrate([]string{"--log-format", "text"}, envOf(map[string]string{"DATABASE_URL": dbURL}))
	if err != nil || c.Database.URL != dbURL || c.Log.Format != "text" {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := ParseMigrate(nil, envOf(nil)); err == nil || !strings.Contains(err.Error(), "DATABASE_URL") {
		t.Fatalf("missing url: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1024": 1024, "1KiB": 1024, "2MiB": 2 << 20, "1G": 1 << 30, "5B": 5} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1TiB", "x"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestWorkerSettings(t *testing.T) {
	env := envOf(map[string]string{"DATABASE_URL": dbURL, "STATE_DIRECTORY": "/srv/state", "DEBATE_BUILD_TIMEOUT": "30m"})
	c, err := ParseWorker([]string{"--concurrency", "2", "--cache-dir", "/srv/cache"}, env)
	if err != nil {
		t.Fatal(err)
	}
	if c.Concurrency != 2 || c.Build.ArtifactDir != "/srv/state/artifacts" || c.Build.CacheDir != "/srv/cache" ||
		c.Build.Timeout != 30*time.Minute || c.Build.Memory != 6<<30 || c.Build.Disk != 16<<30 || c.Build.StaleAfter != 30*time.Second {
		t.Fatalf("worker settings: %+v", c)
	}
	_, err = ParseWorker([]string{"--concurrency", "0", "--build-timeout", "10s", "--build-memory", "1KiB",
		"--stale-after", "1s", "--mirror", "ftp://x", "--build-warn-after", "1h"}, envOf(map[string]string{}))
	for _, want := range []string{"--concurrency", "--build-timeout", "--build-memory", "--stale-after", "--mirror", "--build-warn-after", "DATABASE_URL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

func TestServeBuildSettings(t *testing.T) {
	c, err := ParseServe([]string{"--state-dir", "/srv/debate", "--workers", "1", "--queue-limit", "5"}, envOf(map[string]string{"DATABASE_URL": dbURL}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Builds.Workers != 1 || c.Builds.QueueLimit != 5 || c.Builds.SubmitLimit != 20 || c.Builds.MetricsListen != "127.0.0.1:9090" ||
		c.Build.ArtifactDir != "/srv/debate/artifacts" || c.Build.PinMaxAge != 15*time.Minute {
		t.Fatalf("serve build settings: %+v %+v", c.Builds, c.Build)
	}
	if c, err := ParseServe([]string{"--artifact-dir", "/data/isos", "--metrics-listen", ""}, envOf(map[string]string{"DATABASE_URL": dbURL})); err != nil ||
		c.Build.ArtifactDir != "/data/isos" || c.Builds.MetricsListen != "" {
		t.Fatalf("explicit artifact dir, no metrics: %+v %v", c, err)
	}
	_, err = ParseServe([]string{"--listen", "127.0.0.1:9000", "--metrics-listen", "127.0.0.1:9000", "--workers", "-1"}, envOf(map[string]string{"DATABASE_URL": dbURL}))
	if err == nil || !strings.Contains(err.Error(), "--metrics-listen") || !strings.Contains(err.Error(), "--workers") {
		t.Fatalf("bad build settings: %v", err)
	}
}

// The backups check's age limits follow the schedule unless set, and a limit that the
// schedule itself would break is refused, naming the setting.
func TestBackupAgeLimitsFollowTheSchedule(t *testing.T) {
	env := envOf(map[string]string{"DATABASE_URL": dbURL, "DEBATE_BACKUP_DIR": "/srv/backups"})
	for _, tc := range []struct {
		args                 []string
		maxAge, verifyMaxAge time.Duration
	}{
		{nil, 36 * time.Hour, 8 * 24 * time.Hour},
		{[]string{"--backup-at", "sun 02:00", "--backup-verify-at", "05:00"}, 252 * time.Hour, 48 * time.Hour},
		{[]string{"--backup-max-age", "3d", "--backup-verify-max-age", "30d"}, 72 * time.Hour, 30 * 24 * time.Hour},
	} {
		c, err := ParseServe(tc.args, env)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if c.Backup.MaxAge != tc.maxAge || c.Backup.VerifyMaxAge != tc.verifyMaxAge {
			t.Errorf("%v: limits %s / %s, want %s / %s", tc.args, c.Backup.MaxAge, c.Backup.VerifyMaxAge, tc.maxAge, tc.verifyMaxAge)
		}
	}
	_, err := ParseServe([]string{"--backup-max-age", "1m", "--backup-at", "sun 02:00", "--backup-verify-max-age", "8d"}, env)
	if err == nil || !strings.Contains(err.Error(), "--backup-max-age") || !strings.Contains(err.Error(), "(7d with --backup-at") {
		t.Fatalf("too short a limit: %v", err)
	}
	// As long as the schedule's interval is accepted (a limit set before this check).
	if _, err := ParseServe([]string{"--backup-max-age", "24h"}, env); err != nil {
		t.Fatalf("a limit equal to the interval: %v", err)
	}
}
