package backup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// leftoverAge is how old an interrupted backup's files (temporaries, a dump without its
// checksum file) must be before pruning removes them: older than any running backup.
const leftoverAge = 24 * time.Hour

// Prune removes the backups in dir taken more than retention before now, except the keep
// newest complete ones, which stay whatever their age; and removes the leftovers of
// interrupted backups once they are a day old. Age is judged by the time in the file
// name (when the snapshot was taken), not the modification time, which copies change.
// It returns the paths removed. A file already gone is not an error: two prunes may race.
func Prune(dir string, now time.Time, keep int, retention time.Duration) ([]string, error) {
	entries, err := List(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	remove := func(p string) {
		err := os.Remove(p)
		switch {
		case err == nil:
			removed = append(removed, p)
		case !errors.Is(err, os.ErrNotExist):
			errs = append(errs, err)
		}
	}
	cutoff := now.Add(-retention)
	complete := 0
	for _, e := range entries { // newest first
		switch {
		case e.Complete:
			complete++
			if complete <= keep || !e.Time.Before(cutoff) {
				continue
			}
			// The checksum file first: once it is gone the backup no longer counts as
			// complete, so an interrupted prune never leaves a "complete" half.
			for _, p := range []string{checksumPath(e.Path), e.Path, manifestPath(e.Path)} {
				remove(p)
			}
		case now.Sub(e.Time) > leftoverAge:
			for _, p := range []string{e.Path, manifestPath(e.Path)} {
				remove(p)
			}
		}
	}
	// Temporaries of writers that died: hidden .debate-*.tmp files.
	if des, err := os.ReadDir(dir); err == nil {
		for _, de := range des {
			n := de.Name()
			if !strings.HasPrefix(n, ".debate-") || !strings.HasSuffix(n, ".tmp") {
				continue
			}
			if info, err := de.Info(); err == nil && now.Sub(info.ModTime()) > leftoverAge {
				remove(filepath.Join(dir, n))
			}
		}
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("backup: prune: %w", errors.Join(errs...))
	}
	return removed, nil
}
