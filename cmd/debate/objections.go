package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"debate/internal/catalog"
	"debate/internal/recipe"
	"debate/internal/resolve"
)

// indexConfig says where the package index comes from (flags and DEBATE_* variables).
type indexConfig struct {
	offline  *bool
	cacheDir *string
	mirror   *string
	security *string
}

func indexFlags(fs *flag.FlagSet) indexConfig {
	def := filepath.Join(os.TempDir(), "debate-index")
	if d, err := os.UserCacheDir(); err == nil {
		def = filepath.Join(d, "debate", "index")
	}
	return indexConfig{
		offline:  fs.Bool("offline", envOr("DEBATE_OFFLINE", "") == "true", "check layers only: do not fetch the Debian package index (also DEBATE_OFFLINE=true)"),
		cacheDir: fs.String("index-cache", envOr("DEBATE_INDEX_CACHE", def), "`directory` keeping the verified package index between runs"),
		mirror:   fs.String("mirror", envOr("DEBATE_MIRROR", ""), "Debian mirror `URL` for the package index (default http://deb.debian.org/debian)"),
		security: fs.String("security-mirror", envOr("DEBATE_SECURITY_MIRROR", ""), "Debian security mirror `URL` (default http://deb.debian.org/debian-security)"),
	}
}

// judge raises the objections to a valid recipe. Without the index (offline, or the
// mirror unreachable with nothing cached) only the layer level is judged, and the
// report's note says so.
func judge(ctx context.Context, in *recipe.Recipe, ic indexConfig, last *resolve.Change, stderr io.Writer) (*resolve.Report, error) {
	cat, err := catalog.Default()
	if err != nil {
		return nil, err
	}
	j := &resolve.Judge{
		Catalog: cat, Offline: *ic.offline, CacheDir: *ic.cacheDir,
		Mirror: *ic.mirror, SecurityMirror: *ic.security,
		Warn: func(w string) { fmt.Fprintf(stderr, "warning: %s\n", w) },
	}
	rep, err := j.Check(ctx, in, last)
	if err != nil {
		return nil, err
	}
	if *ic.offline {
		rep.Note = strings.Replace(rep.Note, "offline:", "--offline:", 1)
	}
	return rep, nil
}

// parseChange reads OP:NAME.
func parseChange(s string) (resolve.Change, error) { return resolve.ParseChange(s) }
