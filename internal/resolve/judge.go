package resolve

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"debate/internal/catalog"
	"debate/internal/debian"
	"debate/internal/recipe"
)

// Judge raises the objections to recipes at both levels: layers, and packages against the
// verified Debian package index, which it loads on first use per archive and keeps (a
// server loads it once, not per request). Safe for concurrent use.
type Judge struct {
	Catalog *catalog.Catalog
	// Offline skips the package level: only layers are judged, and the report says so.
	Offline bool
	// CacheDir keeps the verified index between runs; Mirror and SecurityMirror are used
	// when a recipe names none (defaults: deb.debian.org).
	CacheDir, Mirror, SecurityMirror string
	// MaxAge is how long a loaded index is used before the mirror is asked again.
	MaxAge time.Duration
	// Warn receives non-fatal notes (for example: the mirror is unreachable, the last
	// verified copy is used).
	Warn func(string)

	mu      sync.Mutex
	indexes map[string]*judgedIndex
}

type judgedIndex struct {
	mu     sync.Mutex
	index  *debian.Index
	where  string
	loaded time.Time
}

// Check judges a valid recipe. last, when not nil, is the client's last change.
func (j *Judge) Check(ctx context.Context, in *recipe.Recipe, last *Change) (*Report, error) {
	r := in.Clone()
	r.Normalize() // defaults: architecture, components, updates
	note := ""
	var idx *debian.Index
	where := ""
	if j.Offline {
		note = "offline: the package level was not checked (layers only)"
	} else {
		var err error
		idx, where, err = j.index(ctx, r)
		if err != nil {
			note = fmt.Sprintf("the package level was not checked: %v", err)
		}
	}
	rep, err := NewChecker(j.Catalog, idx, where).Check(r, last)
	if err != nil {
		return nil, err
	}
	if rep.Note == "" {
		rep.Note = note
	}
	return rep, nil
}

// index returns the loaded index of the recipe's archive, loading or refreshing it when
// needed. Requests for one archive wait for one load.
func (j *Judge) index(ctx context.Context, r *recipe.Recipe) (*debian.Index, string, error) {
	mirror, security := r.Base.Mirror, r.Base.SecurityMirror
	if mirror == "" {
		mirror = j.Mirror
	}
	if security == "" {
		security = j.SecurityMirror
	}
	suites := debian.DefaultSuites(mirror, security, r.Base.Release)
	if r.Base.Updates != nil && !*r.Base.Updates {
		suites = suites[:1]
	}
	key := fmt.Sprintf("%v|%s|%s", suites, strings.Join(r.Base.Components, ","), r.Base.Architecture)
	j.mu.Lock()
	if j.indexes == nil {
		j.indexes = map[string]*judgedIndex{}
	}
	ji := j.indexes[key]
	if ji == nil {
		ji = &judgedIndex{}
		j.indexes[key] = ji
	}
	j.mu.Unlock()

	ji.mu.Lock()
	defer ji.mu.Unlock()
	maxAge := j.MaxAge
	if maxAge == 0 {
		maxAge = 10 * time.Minute
	}
	if ji.index != nil && time.Since(ji.loaded) < maxAge {
		return ji.index, ji.where, nil
	}
	a := &debian.Archive{Suites: suites, Components: r.Base.Components, Arch: r.Base.Architecture,
		CacheDir: j.CacheDir, MaxAge: maxAge}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	l, err := a.Load(lctx)
	if err != nil {
		if ji.index != nil { // keep judging with the last good index
			if j.Warn != nil {
				j.Warn(fmt.Sprintf("package index refresh failed, using the one loaded %s ago: %v", time.Since(ji.loaded).Round(time.Second), err))
			}
			return ji.index, ji.where, nil
		}
		return nil, "", err
	}
	if j.Warn != nil {
		for _, w := range l.Warnings {
			j.Warn(w)
		}
	}
	ji.index, ji.loaded = l.Index, time.Now()
	ji.where = fmt.Sprintf("Debian %s (%s, %s)", r.Base.Release, r.Base.Architecture, strings.Join(r.Base.Components, ", "))
	return ji.index, ji.where, nil
}
