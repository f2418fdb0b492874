package config

import (
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestTimeOfWeekNext(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	daily, _ := ParseTimeOfWeek("03:00")
	weekly, _ := ParseTimeOfWeek("Sun 04:30")
	for _, tc := range []struct {
		s        TimeOfWeek
		now, due string
	}{
		{daily, "2025-01-01T02:59:59Z", "2025-01-01T03:00:00Z"},
		{daily, "2025-01-01T03:00:00Z", "2025-01-02T03:00:00Z"}, // strictly after
		{daily, "2025-12-31T23:00:00Z", "2026-01-01T03:00:00Z"},
		{daily, "2025-01-01T03:30:00+02:00", "2025-01-01T03:00:00Z"}, // 01:30 UTC: later that day
		{weekly, "2025-01-01T00:00:00Z", "2025-01-05T04:30:00Z"},     // a Wednesday → Sunday
		{weekly, "2025-01-05T04:29:00Z", "2025-01-05T04:30:00Z"},
		{weekly, "2025-01-05T04:30:00Z", "2025-01-12T04:30:00Z"},
		{weekly, "2025-03-29T12:00:00Z", "2025-03-30T04:30:00Z"}, // UTC: no daylight saving jump
	} {
		got := tc.s.Next(at(tc.now))
		want := at(tc.due)
		if !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s after %s: %s, want %s", tc.s, tc.now, got, want)
		}
	}
}

func TestParseTimeOfWeekAndDays(t *testing.T) {
	for in, want := range map[string]string{"3:05": "03:05", "23:59": "23:59", "sunday 00:00": "sun 00:00", "MON 12:00": "mon 12:00"} {
		v, err := ParseTimeOfWeek(in)
		if err != nil || v.String() != want {
			t.Errorf("%q: %v %v, want %s", in, v, err, want)
		}
	}
	for _, in := range []string{"", "24:00", "12:60", "12", "noon", "funday 03:00", "sun 03:00 extra", "3:5"} {
		if _, err := ParseTimeOfWeek(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "36h": 36 * time.Hour, "0d": 0} {
		if d, err := ParseDays(in); err != nil || d != want {
			t.Errorf("%q: %v %v", in, d, err)
		}
	}
	for _, in := range []string{"d", "-1d", "1w", "-3h", "abc"} {
		if _, err := ParseDays(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func env(m map[string]string) Env {
	return func(n string) (string, bool) { v, ok := m[n]; return v, ok }
}

func TestBackupCommandFlagsEnvAndArguments(t *testing.T) {
	vars := env(map[string]string{
		"DATABASE_URL":            "postgres://u@localhost/db",
		"DEBATE_BACKUP_DIR":       "/var/backups/debate",
		"DEBATE_BACKUP_RETENTION": "7d",
		"DEBATE_FORCE":            "true", // must not force anything
	})
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	done := BackupFlags(fs, vars, true)
	args, err := ParseFlagsArgs(fs, []string{"backup.dump", "--pg-bin", "/opt/pg/bin"}, vars, 1)
	if err != nil {
		t.Fatal(err)
	}
	c, err := done()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(args, []string{"backup.dump"}) || c.Backup.PGBin != "/opt/pg/bin" || c.Force {
		t.Fatalf("args %v, config %+v", args, c)
	}

	fs = flag.NewFlagSet("restore", flag.ContinueOnError)
	done = BackupFlags(fs, vars, true)
	if args, err = ParseFlagsArgs(fs, []string{"--force", "--", "-odd name.dump"}, vars, 1); err != nil {
		t.Fatal(err)
	}
	if c, err = done(); err != nil || !c.Force || args[0] != "-odd name.dump" {
		t.Fatalf("--force then --: %v %+v %v", args, c, err)
	}

	fs = flag.NewFlagSet("backup", flag.ContinueOnError)
	done = BackupFlags(fs, vars, false)
	if args, err = ParseFlagsArgs(fs, []string{"--dir", "/tmp/b", "--backup-keep=5"}, vars, 0); err != nil || len(args) != 0 {
		t.Fatalf("%v %v", args, err)
	}
	if c, err = done(); err != nil {
		t.Fatal(err)
	}
	if c.Backup.Dir != "/tmp/b" || c.Backup.Keep != 5 || c.Backup.Retention != 7*24*time.Hour || !c.Backup.Enabled() {
		t.Fatalf("config %+v", c.Backup)
	}

	fs = flag.NewFlagSet("backup", flag.ContinueOnError)
	BackupFlags(fs, vars, false)
	if _, err := ParseFlagsArgs(fs, []string{"a", "b"}, vars, 1); err == nil || !strings.Contains(err.Error(), "too many arguments") {
		t.Fatalf("two files: %v", err)
	}
}

func TestBackupSettingErrorsNameTheSetting(t *testing.T) {
	vars := env(map[string]string{"DATABASE_URL": "postgres://u@localhost/db", "DEBATE_BACKUP_AT": "25:00"})
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	done := ServeFlags(fs, vars)
	if err := ParseFlags(fs, []string{"--backup-keep", "0", "--backup-retention", "1w", "--backup-verify-at", "someday 03:00"}, vars); err != nil {
		t.Fatal(err)
	}
	_, err := done()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("want setting errors, got %v", err)
	}
	for _, want := range []string{"--backup-keep", "--backup-retention", "DEBATE_BACKUP_AT", "someday"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}

	// Off by default for the server; the command needs a folder.
	plain := env(map[string]string{"DATABASE_URL": "postgres://u@localhost/db"})
	fs = flag.NewFlagSet("serve", flag.ContinueOnError)
	done = ServeFlags(fs, plain)
	if err := ParseFlags(fs, nil, plain); err != nil {
		t.Fatal(err)
	}
	if c, err := done(); err != nil || c.Backup.Enabled() || c.Backup.At.String() != "03:00" || c.Backup.VerifyAt.String() != "sun 04:00" {
		t.Fatalf("serve defaults: %+v %v", c, err)
	}
	fs = flag.NewFlagSet("backup", flag.ContinueOnError)
	done2 := BackupFlags(fs, plain, false)
	if _, err := ParseFlagsArgs(fs, nil, plain, 0); err != nil {
		t.Fatal(err)
	}
	c, err := done2()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RequireDir(); err == nil || !strings.Contains(err.Error(), "--backup-dir") || !strings.Contains(err.Error(), "DEBATE_BACKUP_DIR") {
		t.Fatalf("backup without a folder: %v", err)
	}
}
