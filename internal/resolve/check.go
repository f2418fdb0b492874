package resolve

import (
	"fmt"
	"slices"
	"strings"

	"debate/internal/catalog"
	"debate/internal/debian"
	"debate/internal/recipe"
)

// Checker judges recipes against a layer catalog and, when it has one, a Debian package
// index. It is read-only after NewChecker, so one Checker serves concurrent checks.
type Checker struct {
	cat  *catalog.Catalog
	lsat *layerSAT
	idx  *debian.Index
	// minbase is MinbasePackages(idx), computed once.
	minbase []string
	// where names the index in messages: "Debian bookworm (amd64, main)".
	where string
	// maxResolutions bounds the candidates tried per objection (each costs a check).
	maxResolutions int
}

// NewChecker returns a Checker. idx may be nil: then only the layer level is checked.
// where describes the index in messages ("Debian bookworm (amd64, main)").
func NewChecker(cat *catalog.Catalog, idx *debian.Index, where string) *Checker {
	if where == "" {
		where = "the package index"
	}
	c := &Checker{cat: cat, lsat: newLayerSAT(cat), idx: idx, where: where, maxResolutions: 12}
	if idx != nil {
		c.minbase = MinbasePackages(idx)
	}
	return c
}

// HasIndex reports whether the package level is checked.
func (c *Checker) HasIndex() bool { return c.idx != nil }

// Report is the verdict on a recipe.
type Report struct {
	Name string `json:"name"`
	// Sustained is true when there is no objection: the recipe may be delivered.
	Sustained  bool        `json:"sustained"`
	Objections []Objection `json:"objections"`
	// PackagesChecked is false when no package index was available; Note says why.
	PackagesChecked bool   `json:"packagesChecked"`
	Note            string `json:"note,omitempty"`
}

// Check judges r, which must be valid (recipe.Validate; otherwise its *ValidationError is
// returned). last, when not nil, is the client's last change to the recipe: objections it
// caused offer to withdraw it.
func (c *Checker) Check(r *recipe.Recipe, last *Change) (*Report, error) {
	if err := recipe.Validate(r); err != nil {
		return nil, err
	}
	if last != nil {
		if err := ValidateChange(*last); err != nil {
			return nil, err
		}
	}
	fs := c.findings(r)
	rep := &Report{Name: r.Name, Sustained: len(fs) == 0, Objections: []Objection{}, PackagesChecked: c.idx != nil}
	for _, f := range fs {
		o := f.Objection
		o.Resolutions = c.resolutions(r, f, last, len(fs))
		if o.Layers == nil {
			o.Layers = []string{}
		}
		if o.Packages == nil {
			o.Packages = []string{}
		}
		rep.Objections = append(rep.Objections, o)
	}
	return rep, nil
}

// findings are every objection to r, without resolutions.
func (c *Checker) findings(r *recipe.Recipe) []finding {
	out := c.layerFindings(r.Layers)
	if c.idx != nil {
		out = append(out, c.packageFindings(r)...)
	}
	return out
}

// count is the number of objections to r, or -1 when r is not a valid recipe.
func (c *Checker) count(r *recipe.Recipe) int {
	if recipe.Validate(r) != nil {
		return -1
	}
	return len(c.findings(r))
}

// resolutions proposes fixes for one finding and keeps those that, applied, leave fewer
// objections than before (so a client can never be led in a circle).
func (c *Checker) resolutions(r *recipe.Recipe, f finding, last *Change, before int) []Resolution {
	var cands []Resolution
	add := func(kind, summary string, changes ...Change) {
		cands = append(cands, Resolution{Kind: kind, Summary: summary, Changes: changes})
	}
	pos := func(id string) *int {
		i := slices.Index(r.Layers, id)
		if i < 0 {
			return nil
		}
		return &i
	}
	listed := func(id string) bool { return slices.Contains(r.Layers, id) }

	// Withdraw first: when the client says what it just did, undoing it is the most
	// obvious fix.
	if last != nil && c.involves(f, *last) {
		if inv, err := Inverse(*last); err == nil {
			add(Withdraw, "undo the last change ("+describe(*last)+")", inv)
		}
	}
	switch f.Code {
	case ObjUnknownLayer:
		add(Concede, fmt.Sprintf("remove the unknown layer %q", f.subject), Change{Op: OpRemoveLayer, Layer: f.subject, At: pos(f.subject)})
		if s := c.suggestLayer(f.subject); s != "" && !listed(s) {
			add(Rebut, fmt.Sprintf("replace %q with %s (%s)", f.subject, c.title(s), s),
				Change{Op: OpRemoveLayer, Layer: f.subject, At: pos(f.subject)}, Change{Op: OpAddLayer, Layer: s, At: pos(f.subject)})
		}
	case ObjUnmetRequirement:
		for _, cand := range c.cat.Layers() {
			if !listed(cand.ID) && cand.ID != f.subject && cand.Is(f.requirement) {
				add(Amend, fmt.Sprintf("add layer %s (%s)", cand.Title, cand.ID), Change{Op: OpAddLayer, Layer: cand.ID})
			}
		}
	}
	// Concede: remove any listed layer involved.
	for _, id := range f.Layers {
		if listed(id) && f.Code != ObjUnknownLayer {
			add(Concede, fmt.Sprintf("remove layer %s (%s)", c.title(id), id), Change{Op: OpRemoveLayer, Layer: id, At: pos(id)})
		}
	}
	// Concede at the package level: drop a root package from wherever it comes from.
	for _, p := range f.roots {
		var ch []Change
		var from []string
		if slices.Contains(r.Packages, p) {
			ch = append(ch, Change{Op: OpRemovePackage, Package: p})
			from = append(from, "the recipe's packages")
		}
		for _, id := range r.Layers {
			if l, ok := c.cat.Layer(id); ok && slices.Contains(l.Packages, p) {
				ch = append(ch, Change{Op: OpRemoveLayer, Layer: id, At: pos(id)})
				from = append(from, "layer "+id)
			}
		}
		if len(ch) > 0 && !(len(ch) == 1 && ch[0].Op == OpRemoveLayer) {
			add(Concede, fmt.Sprintf("remove package %s (from %s)", p, joinAnd(from)), ch...)
		}
		// Rebut: a recipe package swapped for a named alternative.
		if slices.Contains(r.Packages, p) {
			for _, alt := range f.alternatives {
				if !slices.Contains(r.Packages, alt) {
					add(Rebut, fmt.Sprintf("replace package %s with %s", p, alt),
						Change{Op: OpRemovePackage, Package: p}, Change{Op: OpAddPackage, Package: alt})
				}
			}
		}
	}
	// Rebut: swap an involved layer for one of the same kind that provides the same
	// capabilities without the conflict.
	if f.Code != ObjUnknownLayer {
		for _, id := range f.Layers {
			if !listed(id) {
				continue
			}
			for _, alt := range c.alternatives(id) {
				if !listed(alt) {
					add(Rebut, fmt.Sprintf("replace %s (%s) with %s (%s)", c.title(id), id, c.title(alt), alt),
						Change{Op: OpRemoveLayer, Layer: id, At: pos(id)}, Change{Op: OpAddLayer, Layer: alt, At: pos(id)})
				}
			}
		}
	}

	// Keep what verifiably helps, without duplicates, at most maxResolutions tried.
	out := []Resolution{}
	seen := map[string]bool{}
	tried := 0
	for _, res := range cands {
		key := fmt.Sprint(res.Changes)
		if seen[key] {
			continue
		}
		seen[key] = true
		if tried >= c.maxResolutions {
			break
		}
		tried++
		next, err := Apply(r, res.Changes)
		if err != nil {
			continue
		}
		if n := c.count(next); n >= 0 && n < before {
			out = append(out, res)
		}
	}
	return out
}

// alternatives are catalog layers that could stand in for id: same kind, sharing at least
// one capability.
func (c *Checker) alternatives(id string) []string {
	l, ok := c.cat.Layer(id)
	if !ok || len(l.Provides) == 0 {
		return nil
	}
	var out []string
	for _, m := range c.cat.Layers() {
		if m.ID == id || m.Kind != l.Kind {
			continue
		}
		for _, cp := range l.Capabilities() {
			if _, ok := m.Implementation(cp); ok {
				out = append(out, m.ID)
				break
			}
		}
	}
	return out
}

// involves reports whether the client's last change has to do with a finding.
func (c *Checker) involves(f finding, last Change) bool {
	switch last.Op {
	case OpAddLayer:
		return slices.Contains(f.Layers, last.Layer)
	case OpAddPackage:
		return slices.Contains(f.Packages, last.Package) || slices.Contains(f.roots, last.Package)
	case OpRemoveLayer:
		if f.Code != ObjUnmetRequirement {
			return false
		}
		l, ok := c.cat.Layer(last.Layer)
		return ok && l.Is(f.requirement)
	}
	return false
}

func describe(ch Change) string {
	switch ch.Op {
	case OpAddLayer:
		return "adding layer " + ch.Layer
	case OpRemoveLayer:
		return "removing layer " + ch.Layer
	case OpAddPackage:
		return "adding package " + ch.Package
	case OpRemovePackage:
		return "removing package " + ch.Package
	}
	return ch.Op
}

// String renders the report for a terminal: "sustained: …" or one block per objection.
func (rep *Report) String() string {
	var b strings.Builder
	if rep.Sustained {
		fmt.Fprintf(&b, "sustained: %s has no objections", rep.Name)
		if !rep.PackagesChecked {
			b.WriteString(" at the layer level")
		}
		b.WriteString("\n")
	}
	for i, o := range rep.Objections {
		fmt.Fprintf(&b, "objection %d [%s]: %s\n", i+1, o.Code, o.Reason)
		for _, step := range o.Chain {
			fmt.Fprintf(&b, "    because %s\n", step)
		}
		for _, res := range o.Resolutions {
			fmt.Fprintf(&b, "  - %s: %s\n", res.Kind, res.Summary)
		}
		if len(o.Resolutions) == 0 {
			b.WriteString("  (no single change removes this objection)\n")
		}
	}
	if rep.Note != "" {
		fmt.Fprintf(&b, "note: %s\n", rep.Note)
	}
	return b.String()
}
