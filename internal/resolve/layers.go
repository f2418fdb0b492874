package resolve

import (
	"fmt"
	"slices"
	"strings"

	"github.com/crillab/gophersat/solver"

	"debate/internal/catalog"
	"debate/internal/spelling"
)

// layerSAT is the layer level as a satisfiability problem over the whole catalog: one
// variable per layer, one clause per requirement ("l needs one of the layers that are or
// provide r"), per declared conflict and per pair of different implementations of an
// exclusive capability. A selection is satisfiable when the layers it lists can be
// completed by adding others (never by removing any) so that every clause holds.
type layerSAT struct {
	cat     *catalog.Catalog
	ids     []string
	index   map[string]int // layer id -> variable (1-based)
	clauses [][]int
}

func newLayerSAT(cat *catalog.Catalog) *layerSAT {
	s := &layerSAT{cat: cat, ids: cat.IDs(), index: map[string]int{}}
	for i, id := range s.ids {
		s.index[id] = i + 1
	}
	seen := map[string]bool{}
	add := func(cl []int) {
		slices.Sort(cl)
		k := fmt.Sprint(cl)
		if !seen[k] {
			seen[k] = true
			s.clauses = append(s.clauses, cl)
		}
	}
	layers := cat.Layers()
	for _, l := range layers {
		v := s.index[l.ID]
		for _, req := range l.Requires {
			cl := []int{-v}
			for _, m := range layers {
				if m.ID != l.ID && m.Is(req) {
					cl = append(cl, s.index[m.ID])
				}
			}
			add(cl)
		}
		for _, con := range l.Conflicts {
			for _, m := range layers {
				if m.ID != l.ID && m.Is(con) {
					add([]int{-v, -s.index[m.ID]})
				}
			}
		}
		for _, m := range layers {
			if m.ID != l.ID && len(exclusiveClash(cat, l, m)) > 0 {
				add([]int{-v, -s.index[m.ID]})
			}
		}
	}
	return s
}

// exclusiveClash returns the exclusive capabilities a and b both provide with different
// (or unnamed) implementations.
func exclusiveClash(cat *catalog.Catalog, a, b catalog.Layer) []string {
	var out []string
	for _, p := range a.Provides {
		name, impl := catalog.Capability(p)
		if !cat.Exclusive(name) {
			continue
		}
		if bi, ok := b.Implementation(name); ok && (impl == "" || bi == "" || impl != bi) {
			out = append(out, name)
		}
	}
	return out
}

// satisfiable reports whether the selection can be completed.
func (s *layerSAT) satisfiable(selected []string) bool {
	cnf := make([][]int, 0, len(s.clauses)+len(selected))
	cnf = append(cnf, s.clauses...)
	for _, id := range selected {
		if v, ok := s.index[id]; ok {
			cnf = append(cnf, []int{v})
		}
	}
	// Fresh solver per question: the catalog is a few dozen variables, so this costs
	// microseconds and keeps every answer independent of the last.
	pb := solver.ParseSliceNb(cnf, len(s.ids))
	return solver.New(pb).Solve() == solver.Sat
}

// core returns a minimal subset M of others such that fixed plus M cannot be completed
// (deletion-based minimal unsatisfiable subset over the selection), or nil when fixed
// plus all of others can be.
func (s *layerSAT) core(fixed []string, others []string) []string {
	if s.satisfiable(append(slices.Clone(fixed), others...)) {
		return nil
	}
	m := slices.Clone(others)
	for i := 0; i < len(m); {
		trial := append(slices.Clone(m[:i]), m[i+1:]...)
		if !s.satisfiable(append(slices.Clone(fixed), trial...)) {
			m = trial // not needed for the contradiction
		} else {
			i++
		}
	}
	return m
}

// finding is an objection before its resolutions are attached, with what the resolutions
// are made from.
type finding struct {
	Objection
	// subject is the layer whose problem this is (the one requiring, or the unknown one).
	subject string
	// pair are the two layers of a conflict.
	pair [2]string
	// requirement is what subject requires, for unmet requirements.
	requirement string
	// blockers are listed layers that make the requirement impossible (minimal).
	blockers []string
	// roots are the requested packages a package objection is about.
	roots []string
	// alternatives are package names to swap a root for (a spelling suggestion, or the
	// real packages providing a virtual one).
	alternatives []string
}

// layerFindings judges the layers list. Every problem is reported: unknown layers,
// conflicting pairs and unmet requirements, the last with a minimal explanation (from the
// SAT core) when no layer could be added to meet it.
func (c *Checker) layerFindings(layers []string) []finding {
	var out []finding
	var known []catalog.Layer
	for _, id := range layers {
		l, ok := c.cat.Layer(id)
		if !ok {
			reason := fmt.Sprintf("%q is not a layer in the catalog", id)
			if s := c.suggestLayer(id); s != "" {
				reason += fmt.Sprintf("; did you mean %q (%s)?", s, c.title(s))
			}
			out = append(out, finding{Objection: Objection{
				Code: ObjUnknownLayer, Level: LevelLayers, Reason: reason, Layers: []string{id},
			}, subject: id})
			continue
		}
		known = append(known, l)
	}
	knownIDs := make([]string, len(known))
	for i, l := range known {
		knownIDs[i] = l.ID
	}

	// Conflicting pairs, in list order.
	for i, a := range known {
		for _, b := range known[i+1:] {
			var why []string
			if caps := exclusiveClash(c.cat, a, b); len(caps) > 0 {
				var nouns []string
				for _, cp := range caps {
					ai, _ := a.Implementation(cp)
					bi, _ := b.Implementation(cp)
					n := c.noun(cp)
					if ai != "" && bi != "" {
						n += fmt.Sprintf(" (%s and %s)", ai, bi)
					}
					nouns = append(nouns, n)
				}
				why = append(why, fmt.Sprintf("%s and %s both provide %s, and a system has only one", a.Title, b.Title, joinAnd(nouns)))
			}
			for _, x := range [][2]catalog.Layer{{a, b}, {b, a}} {
				for _, con := range x[0].Conflicts {
					if x[1].Is(con) {
						w := fmt.Sprintf("%s cannot be used with %s", x[0].Title, x[1].Title)
						if con != x[1].ID {
							w += fmt.Sprintf(" (%s rules out anything providing %s)", x[0].Title, c.noun(con))
						}
						why = append(why, w)
					}
				}
			}
			if len(why) == 0 {
				continue
			}
			out = append(out, finding{Objection: Objection{
				Code: ObjLayerConflict, Level: LevelLayers, Reason: strings.Join(why, "; "),
				Layers: []string{a.ID, b.ID},
			}, pair: [2]string{a.ID, b.ID}})
		}
	}

	// Unmet requirements.
	inConflict := map[string]bool{}
	for _, f := range out {
		if f.Code == ObjLayerConflict {
			inConflict[f.pair[0]], inConflict[f.pair[1]] = true, true
		}
	}
	for _, l := range known {
		for _, req := range l.Requires {
			met := false
			for _, m := range known {
				if m.ID != l.ID && m.Is(req) {
					met = true
					break
				}
			}
			if met {
				continue
			}
			f := finding{Objection: Objection{
				Code: ObjUnmetRequirement, Level: LevelLayers, Layers: []string{l.ID},
			}, subject: l.ID, requirement: req}
			what := c.requirementWords(req)
			// Can anything be added to meet it? Judged against the listed layers that are
			// not already in a conflict of their own (those are objected to above), so
			// that one problem is not blamed on another. When nothing can, the SAT core
			// names a minimal set of listed layers that stands in the way.
			var others []string
			for _, id := range knownIDs {
				if id != l.ID && !inConflict[id] {
					others = append(others, id)
				}
			}
			possible := false
			for _, cand := range c.cat.Layers() {
				if cand.ID != l.ID && cand.Is(req) && c.lsat.satisfiable(append([]string{cand.ID, l.ID}, others...)) {
					possible = true
					break
				}
			}
			if possible {
				f.Reason = fmt.Sprintf("%s needs %s, and no listed layer provides it", l.Title, what)
			} else if f.blockers = c.lsat.core([]string{l.ID}, others); len(f.blockers) > 0 {
				f.Reason = fmt.Sprintf("%s needs %s, but nothing that provides it can be used together with %s", l.Title, what, c.andTitles(f.blockers))
				f.Layers = append(f.Layers, f.blockers...)
			} else {
				f.Reason = fmt.Sprintf("%s needs %s, and nothing in the catalog provides it alongside the other layers", l.Title, what)
			}
			out = append(out, f)
		}
	}
	return out
}

func (c *Checker) requirementWords(req string) string {
	if l, ok := c.cat.Layer(req); ok {
		return fmt.Sprintf("the %s layer", l.Title)
	}
	return c.noun(req)
}

func (c *Checker) noun(capability string) string {
	if ci, ok := c.cat.CapabilityInfo(capability); ok {
		return ci.Noun
	}
	return capability
}

func (c *Checker) title(id string) string {
	if l, ok := c.cat.Layer(id); ok {
		return l.Title
	}
	return id
}

func (c *Checker) andTitles(ids []string) string {
	var t []string
	for _, id := range ids {
		t = append(t, fmt.Sprintf("%s (%s)", c.title(id), id))
	}
	return joinAnd(t)
}

// suggestLayer returns the catalog id closest to a misspelt one, if close enough.
func (c *Checker) suggestLayer(id string) string {
	return spelling.Nearest(id, slices.Values(c.cat.IDs()))
}

func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}
