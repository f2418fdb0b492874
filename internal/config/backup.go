package config

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Backup configures database backups (internal/backup): where dumps go, how long they are
// kept, when the server takes and verifies them, and when readiness calls them too old.
type Backup struct {
	// Dir is the folder of dumps. Empty means backups are off (for `debate serve`).
	Dir string
	// PGBin is the folder holding pg_dump and pg_restore; empty means the one matching
	// the server's major version (/usr/lib/postgresql/N/bin), else PATH.
	PGBin string
	// Retention is how long dumps are kept; the newest Keep are kept whatever their age.
	Retention time.Duration
	Keep      int
	// At is when the server takes the daily backup; VerifyAt when it verifies the newest.
	At       TimeOfWeek
	VerifyAt TimeOfWeek
	// MaxAge and VerifyMaxAge: the backups check fails when the newest successful backup, or the
	// newest passed verification, is older (or the newest attempt failed).
	MaxAge       time.Duration
	VerifyMaxAge time.Duration
	// Timeout bounds one dump, verification or restore.
	Timeout time.Duration
}

// Enabled reports whether backups are configured.
func (b Backup) Enabled() bool { return b.Dir != "" }

// TimeOfWeek is a UTC time of day, every day or on one weekday: "03:00" or "sun 04:00".
// It is a schedule: Next gives the following occurrence (River's PeriodicSchedule).
type TimeOfWeek struct {
	Weekly  bool
	Weekday time.Weekday // when Weekly
	Hour    int
	Minute  int
}

// Next is the first occurrence strictly after t.
func (s TimeOfWeek) Next(t time.Time) time.Time {
	t = t.UTC()
	next := time.Date(t.Year(), t.Month(), t.Day(), s.Hour, s.Minute, 0, 0, time.UTC)
	if s.Weekly {
		next = next.AddDate(0, 0, (int(s.Weekday)-int(next.Weekday())+7)%7)
		if !next.After(t) {
			next = next.AddDate(0, 0, 7)
		}
		return next
	}
	if !next.After(t) {
		next = next.AddDate(0, 0, 1)
	}
	return next
}

// Interval is the time between two occurrences: a day, or a week.
func (s TimeOfWeek) Interval() time.Duration {
	if s.Weekly {
		return 7 * 24 * time.Hour
	}
	return 24 * time.Hour
}

func (s TimeOfWeek) String() string {
	if s.Weekly {
		return fmt.Sprintf("%s %02d:%02d", strings.ToLower(s.Weekday.String()[:3]), s.Hour, s.Minute)
	}
	return fmt.Sprintf("%02d:%02d", s.Hour, s.Minute)
}

// ParseTimeOfWeek reads "HH:MM" (daily) or "DAY HH:MM" (weekly; DAY is mon…sun or the
// full English name), in UTC.
func ParseTimeOfWeek(s string) (TimeOfWeek, error) {
	var out TimeOfWeek
	fields := strings.Fields(strings.ToLower(s))
	var clock string
	switch len(fields) {
	case 1:
		clock = fields[0]
	case 2:
		day, ok := weekdays[fields[0]]
		if !ok {
			return out, fmt.Errorf("unknown weekday %q (want mon, tue, wed, thu, fri, sat or sun)", fields[0])
		}
		out.Weekly, out.Weekday, clock = true, day, fields[1]
	default:
		return out, errors.New(`want "HH:MM" (daily, UTC) or "DAY HH:MM" (weekly), e.g. "03:00" or "sun 04:00"`)
	}
	h, m, ok := strings.Cut(clock, ":")
	hour, err1 := strconv.Atoi(h)
	minute, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hour < 0 || hour > 23 || minute < 0 || minute > 59 {
		return out, fmt.Errorf("time %q: want HH:MM from 00:00 to 23:59 (UTC)", clock)
	}
	out.Hour, out.Minute = hour, minute
	return out, nil
}

var weekdays = func() map[string]time.Weekday {
	m := map[string]time.Weekday{}
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		m[name], m[name[:3]] = d, d
	}
	return m
}()

// ParseDays reads a duration that may be given in days ("30d") or as a Go duration
// ("36h", "90m").
func ParseDays(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 || d > 100*365 {
			return 0, fmt.Errorf("want a number of days such as 30d, got %q", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration such as 30d, 36h or 90m, got %q", s)
	}
	return d, nil
}

// FormatDays writes d as ParseDays reads it: whole days as "7d", else as Go writes a
// duration ("36h0m0s").
func FormatDays(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return d.String()
}

type backupRaw struct {
	dir, pgBin                      string
	retention, maxAge, verifyMaxAge string
	keep                            int
	at, verifyAt                    string
	timeout                         time.Duration
}

// Which backup settings a command declares.
type backupMode int

const (
	backupForServe   backupMode = iota // everything: the server schedules and judges backups
	backupForCommand                   // debate backup …: folder, tools, retention, timeout
	backupForRestore                   // debate restore: tools and timeout
)

// backupFlags declares the backup settings mode needs on fs (all named backup-*, so that
// `debate serve` can carry them too); the others keep their defaults.
func backupFlags(fs *flag.FlagSet, r *backupRaw, mode backupMode, dirUsage string) {
	*r = backupRaw{retention: "30d", keep: 3, at: "03:00", verifyAt: "sun 04:00",
		timeout: 2 * time.Hour} // maxAge, verifyMaxAge: "" follows the schedule
	if mode != backupForRestore {
		fs.StringVar(&r.dir, "backup-dir", "", dirUsage)
	}
	fs.StringVar(&r.pgBin, "pg-bin", "", "folder holding pg_dump and pg_restore (default: the one matching the server's major version, else PATH)")
	if mode != backupForRestore {
		fs.StringVar(&r.retention, "backup-retention", r.retention, "how long dumps are kept (e.g. 30d, 72h)")
		fs.IntVar(&r.keep, "backup-keep", r.keep, "the newest dumps kept whatever their age")
	}
	if mode == backupForServe {
		fs.StringVar(&r.at, "backup-at", r.at, `when the daily backup is taken, UTC ("HH:MM", or "DAY HH:MM" for weekly)`)
		fs.StringVar(&r.verifyAt, "backup-verify-at", r.verifyAt, `when the newest dump is verified by restoring it, UTC ("DAY HH:MM" weekly, or "HH:MM" daily)`)
		fs.StringVar(&r.maxAge, "backup-max-age", r.maxAge, "the backups check (readiness, metrics) fails when the newest successful backup is older (default: 1.5 times the time between scheduled backups, 36h for daily)")
		fs.StringVar(&r.verifyMaxAge, "backup-verify-max-age", r.verifyMaxAge, "the backups check (readiness, metrics) fails when the newest passed verification is older (default: a day more than the time between scheduled verifications, 8d for weekly)")
	}
	fs.DurationVar(&r.timeout, "backup-timeout", r.timeout, "longest one dump, verification or restore may take")
}

func (r *backupRaw) validate() (*Backup, error) {
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, settingError(flagName, format, args...))
	}
	b := &Backup{Keep: r.keep, Timeout: r.timeout}
	if r.dir != "" {
		abs, err := filepath.Abs(r.dir)
		if err != nil {
			bad("backup-dir", "%v", err)
		}
		b.Dir = abs
	}
	if r.pgBin != "" {
		abs, err := filepath.Abs(r.pgBin)
		if err != nil {
			bad("pg-bin", "%v", err)
		}
		b.PGBin = abs
	}
	var err error
	if b.Retention, err = ParseDays(r.retention); err != nil {
		bad("backup-retention", "%v", err)
	} else if b.Retention < time.Hour {
		bad("backup-retention", "at least 1h, got %q", r.retention)
	}
	if r.keep < 1 || r.keep > 10000 {
		bad("backup-keep", "want 1 to 10000 (the newest dumps are always kept), got %d", r.keep)
	}
	if b.At, err = ParseTimeOfWeek(r.at); err != nil {
		bad("backup-at", "%v", err)
	}
	if b.VerifyAt, err = ParseTimeOfWeek(r.verifyAt); err != nil {
		bad("backup-verify-at", "%v", err)
	}
	// Unset limits follow the schedule: one missed run plus slack.
	maxAge, verifyMaxAge := r.maxAge, r.verifyMaxAge
	if maxAge == "" {
		maxAge = (b.At.Interval() * 3 / 2).String()
	}
	if verifyMaxAge == "" {
		verifyMaxAge = (b.VerifyAt.Interval() + 24*time.Hour).String()
	}
	if b.MaxAge, err = ParseDays(maxAge); err != nil || b.MaxAge <= 0 {
		bad("backup-max-age", "want a positive duration such as 36h or 2d, got %q", r.maxAge)
	}
	if b.VerifyMaxAge, err = ParseDays(verifyMaxAge); err != nil || b.VerifyMaxAge <= 0 {
		bad("backup-verify-max-age", "want a positive duration such as 8d, got %q", r.verifyMaxAge)
	}
	// A limit shorter than the time between scheduled runs fails the check most of the
	// time, by design of the settings rather than by any fault.
	if b.MaxAge > 0 && b.MaxAge < b.At.Interval() {
		bad("backup-max-age", "%s is shorter than the time between scheduled backups (%s with --backup-at %q): the check would fail between them; want e.g. %s",
			r.maxAge, FormatDays(b.At.Interval()), b.At, FormatDays(b.At.Interval()*3/2))
	}
	if b.VerifyMaxAge > 0 && b.VerifyMaxAge < b.VerifyAt.Interval() {
		bad("backup-verify-max-age", "%s is shorter than the time between scheduled verifications (%s with --backup-verify-at %q); want e.g. %s",
			r.verifyMaxAge, FormatDays(b.VerifyAt.Interval()), b.VerifyAt, FormatDays(b.VerifyAt.Interval()+24*time.Hour))
	}
	if r.timeout <= 0 {
		bad("backup-timeout", "want a positive duration such as 2h, got %s", r.timeout)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return b, nil
}

// BackupCommand is the validated configuration of `debate backup`, `debate backup
// verify|prune|list` and `debate restore`.
type BackupCommand struct {
	Database Database
	Backup   Backup
	Log      Log
	// Force lets `debate restore` replace a database that is not empty.
	Force bool
	// SkipChecksum lets `debate restore` use a dump that has no checksum file.
	SkipChecksum bool
}

// BackupFlags declares the flags of `debate backup …` (restore is true for `debate
// restore`, which adds --force) and returns the validation to run after parsing. Whether
// the backup folder is needed depends on the arguments: see RequireDir.
func BackupFlags(fs *flag.FlagSet, env Env, restore bool) func() (*BackupCommand, error) {
	var db dbRaw
	var lg logRaw
	var br backupRaw
	c := &BackupCommand{}
	databaseFlags(fs, &db)
	logFlags(fs, &lg)
	if restore {
		backupFlags(fs, &br, backupForRestore, "")
	} else {
		backupFlags(fs, &br, backupForCommand, "folder of the dumps (--dir for short)")
	}
	if restore {
		fs.BoolVar(&c.Force, "force", false, "restore into a database that is not empty: everything in it is dropped first (command line only; no variable sets it)")
		fs.BoolVar(&c.SkipChecksum, "skip-checksum", false, "restore a dump that has no .sha256 file next to it (command line only; no variable sets it)")
	}
	return func() (*BackupCommand, error) {
		var errs []error
		d, err := db.validate(env)
		errs = append(errs, err)
		l, err := lg.validate()
		errs = append(errs, err)
		b, err := br.validate()
		errs = append(errs, err)
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		c.Database, c.Log, c.Backup = *d, *l, *b
		return c, nil
	}
}

// RequireDir is the error for a command that needs the backup folder when none is set.
func (c *BackupCommand) RequireDir() error {
	if c.Backup.Dir != "" {
		return nil
	}
	return settingError("backup-dir", "required: the folder of the backups (--dir for short)")
}

// ParseFlagsArgs is ParseFlags for commands that also take arguments (file names): flags
// and arguments may come in any order ("restore FILE --force" or "restore --force FILE"),
// "--" ends the flags, and --dir is short for --backup-dir. It returns the arguments,
// refusing more than maxArgs.
func ParseFlagsArgs(fs *flag.FlagSet, args []string, env Env, maxArgs int) ([]string, error) {
	var flagArgs, positional []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			positional = append(positional, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			positional = append(positional, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "dir" {
			name = "backup-dir"
			a = "--backup-dir" + strings.TrimPrefix(strings.TrimLeft(a, "-"), "dir")
		}
		flagArgs = append(flagArgs, a)
		f := fs.Lookup(name)
		if hasValue || f == nil || isBoolFlag(f) {
			continue // fs.Parse reports unknown flags
		}
		if i+1 < len(args) {
			i++
			flagArgs = append(flagArgs, args[i])
		}
	}
	blocked := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { blocked[EnvName(f.Name)] = commandLineOnly(f.Name) })
	cmdLineOnly := func(name string) (string, bool) {
		if blocked[name] {
			return "", false
		}
		return env(name)
	}
	if err := parse(fs, flagArgs, cmdLineOnly, dbAliases()); err != nil {
		return nil, err
	}
	if len(positional) > maxArgs {
		if maxArgs == 0 {
			return nil, &Error{Reason: fmt.Sprintf("unexpected argument %q (settings are flags: --name value)", positional[0])}
		}
		return nil, &Error{Reason: fmt.Sprintf("too many arguments: %s (want at most %d)", strings.Join(positional, " "), maxArgs)}
	}
	return positional, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}
