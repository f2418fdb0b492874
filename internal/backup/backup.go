// Package backup takes PostgreSQL dumps of Debate's database, proves them by restoring
// them into a scratch database, restores them for real, and prunes old ones.
//
// A backup is three files in the backup folder, written atomically:
//
//	debate-20250102T030000Z.dump         pg_dump custom format (compressed)
//	debate-20250102T030000Z.dump.json    manifest: row count of every table, schema version, size, sha256, timing
//	debate-20250102T030000Z.dump.sha256  "<sha256>  <file>", as sha256sum -c reads it
//
// The checksum file is renamed into place last: a backup whose .sha256 is missing was
// interrupted and is never listed, verified or restored as if complete. The row counts
// are taken in the very snapshot pg_dump dumps (an exported snapshot), so a verification
// can demand exact equality.
package backup

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"debate/internal/config"
	"debate/internal/store"
)

var (
	// ErrNoBackups means the backup folder holds no complete backup.
	ErrNoBackups = errors.New("no complete backup found")
	// ErrNoFolder: the backup folder does not exist.
	ErrNoFolder = errors.New("no such backup folder")
	// ErrIncomplete means a backup lacks its checksum file or manifest.
	ErrIncomplete = errors.New("backup is incomplete")
	// ErrNoChecksum means a dump has no checksum file (it is also ErrIncomplete): an
	// interrupted backup, or a dump made by hand, which restore takes with --skip-checksum.
	ErrNoChecksum = fmt.Errorf("%w: no checksum file", ErrIncomplete)
	// ErrCorrupt means a dump does not match its checksum: truncated or damaged.
	ErrCorrupt = errors.New("backup is corrupted")
	// ErrMismatch means a restored dump differs from what was recorded when it was taken.
	ErrMismatch = errors.New("restored backup does not match its manifest")
	// ErrRestore means pg_restore could not restore a dump that passed its checksum.
	ErrRestore = errors.New("restore failed")
	// ErrNotEmpty means restore was asked to write into a database that holds data.
	ErrNotEmpty = errors.New("database is not empty")
	// ErrToolMissing means pg_dump or pg_restore is missing or too old for the server.
	ErrToolMissing = errors.New("PostgreSQL client tools unusable")
	// ErrBusy means another backup of the same database is running; try again later.
	ErrBusy = store.ErrBackupBusy
)

// ManifestFormat names the manifest layout, so that later versions can read older ones.
const ManifestFormat = "debate-backup/1"

// Manifest is the .json file next to a dump.
type Manifest struct {
	Format        string              `json:"format"`
	File          string              `json:"file"`
	Database      string              `json:"database"`
	ServerVersion string              `json:"server_version"`
	PGDump        string              `json:"pg_dump"`
	PGDumpMajor   int                 `json:"pg_dump_major"`
	StartedAt     time.Time           `json:"started_at"`
	DurationMS    int64               `json:"duration_ms"`
	Size          int64               `json:"size_bytes"`
	SHA256        string              `json:"sha256"`
	Schema        store.SchemaVersion `json:"schema"`
	Tables        map[string]int64    `json:"tables"`
	Host          string              `json:"host,omitempty"`
}

// Entry is a backup found in the backup folder.
type Entry struct {
	Path     string    // the .dump file
	Time     time.Time // from its name: when the dump's snapshot was taken (UTC, seconds)
	Seq      int       // 0, or the suffix that made the name unique
	Complete bool      // the checksum file and the manifest are there
	Size     int64
}

// Name is the dump's file name.
func (e Entry) Name() string { return filepath.Base(e.Path) }

// Files are the paths that make up the backup: dump, manifest, checksum.
func (e Entry) Files() []string { return filesOf(e.Path) }

func filesOf(dump string) []string { return []string{dump, manifestPath(dump), checksumPath(dump)} }

func manifestPath(dump string) string { return dump + ".json" }
func checksumPath(dump string) string { return dump + ".sha256" }

// nameTime is the time format in dump names: sortable, no characters a shell quotes.
const nameTime = "20060102T150405Z"

var dumpName = regexp.MustCompile(`^debate-(\d{8}T\d{6}Z)(?:-(\d+))?\.dump$`)

// dumpFileName is the name of a dump taken at t, with seq > 0 when t's name was taken.
func dumpFileName(t time.Time, seq int) string {
	if seq == 0 {
		return "debate-" + t.UTC().Format(nameTime) + ".dump"
	}
	return fmt.Sprintf("debate-%s-%d.dump", t.UTC().Format(nameTime), seq)
}

// parseEntry reads a dump file name; ok is false for other files.
func parseEntry(dir, name string) (Entry, bool) {
	m := dumpName.FindStringSubmatch(name)
	if m == nil {
		return Entry{}, false
	}
	t, err := time.Parse(nameTime, m[1])
	if err != nil {
		return Entry{}, false
	}
	seq := 0
	if m[2] != "" {
		seq, _ = strconv.Atoi(m[2])
	}
	return Entry{Path: filepath.Join(dir, name), Time: t, Seq: seq}, true
}

// List returns the backups in dir, newest first, complete or not. A missing folder is
// an error (ErrNoFolder).
func List(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		// Most likely a mistyped --backup-dir: saying "no backups" would pass for success.
		return nil, fmt.Errorf("backup: the backup folder %s does not exist (check --backup-dir): %w", dir, ErrNoFolder)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: list %s: %w", dir, err)
	}
	present := map[string]bool{}
	for _, de := range des {
		present[de.Name()] = true
	}
	var out []Entry
	for _, de := range des {
		e, ok := parseEntry(dir, de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		e.Complete = present[de.Name()+".sha256"] && present[de.Name()+".json"]
		if info, err := de.Info(); err == nil {
			e.Size = info.Size()
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].Seq > out[j].Seq
	})
	return out, nil
}

// futureSlack is how far ahead of this machine's clock a backup's name may be dated and
// still count as the newest: more means a clock that was wrong, or a renamed copy.
const futureSlack = 24 * time.Hour

// Newest is the newest complete backup in dir. Backups dated more than a day ahead of
// the clock are passed over: they would otherwise stay "the newest" until that date, and
// the verification would keep checking them instead of the backups being taken now.
func Newest(dir string) (Entry, error) {
	es, err := List(dir)
	if err != nil {
		return Entry{}, err
	}
	var future []string
	for _, e := range es {
		switch {
		case !e.Complete:
		case e.Future(time.Now()):
			future = append(future, e.Name())
		default:
			return e, nil
		}
	}
	if len(future) > 0 {
		return Entry{}, fmt.Errorf("backup: %w in %s: only backups dated in the future (%s; is the clock right?), which are passed over",
			ErrNoBackups, dir, strings.Join(future, ", "))
	}
	return Entry{}, fmt.Errorf("backup: %w in %s (take one with: debate backup)", ErrNoBackups, dir)
}

// Future reports whether the backup's name dates it more than a day after now.
func (e Entry) Future(now time.Time) bool { return e.Time.After(now.Add(futureSlack)) }

// wrapped is an error whose message is its own but which is also err (a sentinel).
type wrapped struct {
	err error
	msg string
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

// ReadManifest reads the manifest of the dump at path.
func ReadManifest(dump string) (*Manifest, error) {
	b, err := os.ReadFile(manifestPath(dump))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("backup: %w: %s has no manifest %s (an interrupted backup?)",
			ErrIncomplete, filepath.Base(dump), filepath.Base(manifestPath(dump)))
	}
	if err != nil {
		return nil, fmt.Errorf("backup: read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("backup: %w: manifest %s is not valid JSON: %v", ErrCorrupt, filepath.Base(manifestPath(dump)), err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("backup: manifest %s has format %q; this version reads %q",
			filepath.Base(manifestPath(dump)), m.Format, ManifestFormat)
	}
	return &m, nil
}

// readChecksum reads the sha256 recorded in the dump's checksum file.
func readChecksum(dump string) (string, error) {
	b, err := os.ReadFile(checksumPath(dump))
	if errors.Is(err, os.ErrNotExist) {
		return "", &wrapped{err: ErrNoChecksum, msg: fmt.Sprintf("backup: %v: %s has no checksum file %s (an interrupted backup?)",
			ErrIncomplete, filepath.Base(dump), filepath.Base(checksumPath(dump)))}
	}
	if err != nil {
		return "", fmt.Errorf("backup: read checksum: %w", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 || len(fields[0]) != 64 {
		return "", fmt.Errorf("backup: %w: checksum file %s does not hold a sha256", ErrCorrupt, filepath.Base(checksumPath(dump)))
	}
	if _, err := hex.DecodeString(fields[0]); err != nil {
		return "", fmt.Errorf("backup: %w: checksum file %s does not hold a sha256", ErrCorrupt, filepath.Base(checksumPath(dump)))
	}
	return strings.ToLower(fields[0]), nil
}

// checkSum hashes f from its start and compares with want; wantSize (when > 0) makes a
// truncation say so. f is left positioned at its start, for pg_restore to read.
func checkSum(f *os.File, want string, wantSize int64) error {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("backup: read %s: %w", filepath.Base(f.Name()), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got == want {
		return nil
	}
	what := "damaged"
	switch {
	case wantSize > 0 && n < wantSize:
		what = fmt.Sprintf("truncated: %d of %d bytes", n, wantSize)
	case wantSize > 0 && n > wantSize:
		what = fmt.Sprintf("%d bytes, %d more than recorded", n, n-wantSize)
	case wantSize > 0:
		what = fmt.Sprintf("damaged: the size (%d bytes) is right but the content is not", n)
	}
	return fmt.Errorf("backup: %w: %s is %s; its sha256 is %.16s…, the checksum file says %.16s…; do not restore it, use an older backup",
		ErrCorrupt, filepath.Base(f.Name()), what, got, want)
}

// Service runs backups for the server and the commands: dump, verify, prune, and the
// record of each run in the database.
type Service struct {
	store  *store.Store
	cfg    config.Backup
	logger *slog.Logger
	host   string
	plan   []recurring // the schedule RunSchedule follows
}

// New makes a Service. st is the database backed up, and where runs are recorded.
func New(st *store.Store, cfg config.Backup, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	return &Service{store: st, cfg: cfg, logger: logger, host: host, plan: defaultPlan(cfg)}
}

// Config is the service's configuration.
func (s *Service) Config() config.Backup { return s.cfg }

// randomHex is n random bytes in hex: unique names for temporary files and databases.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	return hex.EncodeToString(b)
}
