package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"debate/internal/catalog"
	"debate/internal/debian"
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
	r := in.Clone()
	r.Normalize() // defaults: architecture, components, updates
	cat, err := catalog.Default()
	if err != nil {
		return nil, err
	}
	var idx *debian.Index
	note := ""
	where := ""
	if *ic.offline {
		note = "--offline: the package level was not checked (layers only)"
	} else {
		mirror, security := r.Base.Mirror, r.Base.SecurityMirror
		if mirror == "" {
			mirror = *ic.mirror
		}
		if security == "" {
			security = *ic.security
		}
		suites := debian.DefaultSuites(mirror, security, r.Base.Release)
		if r.Base.Updates != nil && !*r.Base.Updates {
			suites = suites[:1]
		}
		a := &debian.Archive{Suites: suites, Components: r.Base.Components, Arch: r.Base.Architecture,
			CacheDir: *ic.cacheDir, MaxAge: 10 * time.Minute}
		lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		l, err := a.Load(lctx)
		cancel()
		if err != nil {
			note = fmt.Sprintf("the package level was not checked: %v", err)
		} else {
			idx = l.Index
			where = fmt.Sprintf("Debian %s (%s, %s)", r.Base.Release, r.Base.Architecture, strings.Join(r.Base.Components, ", "))
			for _, w := range l.Warnings {
				fmt.Fprintf(stderr, "warning: %s\n", w)
			}
		}
	}
	rep, err := resolve.NewChecker(cat, idx, where).Check(r, last)
	if err != nil {
		return nil, err
	}
	if rep.Note == "" {
		rep.Note = note
	}
	return rep, nil
}

// parseChange reads OP:NAME.
func parseChange(s string) (resolve.Change, error) {
	op, name, ok := strings.Cut(s, ":")
	if !ok {
		return resolve.Change{}, fmt.Errorf("want OP:NAME, e.g. add-layer:gnome, got %q", s)
	}
	ch := resolve.Change{Op: op}
	switch op {
	case resolve.OpAddLayer, resolve.OpRemoveLayer:
		ch.Layer = name
	default:
		ch.Package = name
	}
	return ch, resolve.ValidateChange(ch)
}
