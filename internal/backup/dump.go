package backup

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"debate/internal/store"
)

// DumpResult describes a backup just taken.
type DumpResult struct {
	Entry    Entry
	Manifest Manifest
	Duration time.Duration
	// PruneError is set by Service.Backup when the backup succeeded but pruning old
	// ones did not.
	PruneError error
}

// Dump writes a new backup of st's database into dir. The dump and the row counts come
// from one exported snapshot; the files appear only when all three are written and
// synced. ErrBusy when another backup of the database is running: that one is left alone.
func Dump(ctx context.Context, st *store.Store, dir, pgBin string) (*DumpResult, error) {
	start := time.Now()
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("backup: create backup folder: %w", err)
	}
	major, serverVersion, err := store.ServerMajorVersion(ctx, st.Pool())
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	tl, err := findTools(ctx, pgBin, major)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	env, err := libpqEnv(st.ConnString(), "")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}

	snap, err := st.BeginDumpSnapshot(ctx)
	if errors.Is(err, store.ErrBackupBusy) {
		return nil, fmt.Errorf("backup: %w (it holds the backup lock); this one was not started, try again when it is done", ErrBusy)
	}
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	defer snap.Close()
	taken := time.Now().UTC()
	counts, err := snap.CountRows(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	schema, err := snap.SchemaVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}

	// A hidden, unique temporary name: a listing never mistakes it for a backup, and two
	// writers (even of different databases into one folder) never share it.
	tmp, err := os.CreateTemp(dir, ".debate-"+taken.Format(nameTime)+"-*.dump.tmp")
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var temps []string
	temps = append(temps, tmp.Name())
	defer func() {
		for _, p := range temps {
			_ = os.Remove(p) // no-op for those renamed into place
		}
	}()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(tmp, h), 1<<20)
	cw := &countWriter{w: bw}
	dumpErr := runTool(ctx, env, nil, cw, tl.dump,
		"--format=custom", "--snapshot="+snap.ID, "--no-password", "--dbname="+conninfoDB(snap.Database))
	if dumpErr == nil {
		dumpErr = bw.Flush()
	}
	if dumpErr == nil {
		dumpErr = tmp.Sync()
	}
	if err := tmp.Close(); err != nil && dumpErr == nil {
		dumpErr = err
	}
	if dumpErr != nil {
		return nil, fmt.Errorf("backup: dump of %s: %w", snap.Database, dumpErr)
	}
	snap.Close() // the dump is written: let the database go on (a second Close is a no-op)

	sum := hex.EncodeToString(h.Sum(nil))
	m := Manifest{
		Format: ManifestFormat, Database: snap.Database, ServerVersion: serverVersion,
		PGDump: tl.version, PGDumpMajor: tl.major, StartedAt: taken,
		Size: cw.n, SHA256: sum, Schema: schema, Tables: counts,
	}
	m.Host, _ = os.Hostname()

	// Claim a final name by hard-linking the dump to it: link never replaces a file, so
	// two backups in the same second get different names.
	var final string
	for seq := 0; ; seq++ {
		final = filepath.Join(dir, dumpFileName(taken, seq))
		err := os.Link(tmp.Name(), final)
		if err == nil {
			break
		}
		if !errors.Is(err, os.ErrExist) || seq >= 1000 {
			return nil, fmt.Errorf("backup: name the dump: %w", err)
		}
	}
	committed := false
	defer func() {
		if !committed {
			for _, p := range filesOf(final) {
				_ = os.Remove(p)
			}
		}
	}()
	m.File = filepath.Base(final)
	m.DurationMS = time.Since(start).Milliseconds()
	mj, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("backup: manifest: %w", err)
	}
	// Manifest first, checksum last: the checksum file's presence is what marks a backup
	// complete.
	for _, f := range []struct {
		path string
		data []byte
	}{
		{manifestPath(final), append(mj, '\n')},
		{checksumPath(final), []byte(sum + "  " + m.File + "\n")},
	} {
		tp, err := writeTemp(dir, f.data)
		if tp != "" {
			temps = append(temps, tp)
		}
		if err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
		if err := os.Rename(tp, f.path); err != nil {
			return nil, fmt.Errorf("backup: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	committed = true
	return &DumpResult{
		Entry:    Entry{Path: final, Time: taken.Truncate(time.Second), Complete: true, Size: cw.n},
		Manifest: m,
		Duration: time.Since(start),
	}, nil
}

// writeTemp writes data to a new hidden temporary file in dir, synced.
func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".debate-*.tmp")
	if err != nil {
		return "", err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return f.Name(), err
}

// syncDir makes the renames in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
