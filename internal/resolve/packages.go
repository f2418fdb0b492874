package resolve

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/crillab/gophersat/solver"

	"debate/internal/catalog"
	"debate/internal/debian"
	"debate/internal/recipe"
)

// ImageBasePackages are the packages every Debian image gets on top of minbase.
// The list lives in the recipe package, shared with the builder.
func ImageBasePackages() []string {
	return recipe.BasePackages("debian")
}

// ImpliedPackages are packages a recipe's settings need without naming them (the effective
// recipe: layers applied). The list lives in the recipe package, shared with the builder.
func ImpliedPackages(r *recipe.Recipe) []string {
	return r.ImpliedPackages()
}

// MinbasePackages are what mmdebstrap's minbase variant installs: every package that is
// Essential or of required priority, and apt.
func MinbasePackages(idx *debian.Index) []string {
	out := []string{"apt"}
	for _, n := range idx.Names() {
		id, _ := idx.Candidate(n)
		p := idx.Package(id)
		if (p.Essential || p.Priority == "required") && n != "apt" {
			out = append(out, n)
		}
	}
	return out
}

// packageRoot is a requested package: one selector variable, true when it is asked for.
type packageRoot struct {
	name   string
	sel    int
	owners []string // "recipe" and layer ids
}

// pkgProblem is the package level as a satisfiability problem over the dependency closure
// of everything requested: one variable per candidate package reachable through Depends
// and Pre-Depends (every alternative), clauses for each dependency group ("a needs one of
// these"), each Conflicts and Breaks between two packages of the closure, the base system
// as hard clauses and each requested package behind a selector variable, so that minimal
// unsatisfiable sets of requests can be found with assumptions.
type pkgProblem struct {
	idx     *debian.Index
	vars    map[debian.PackageID]int
	ids     []debian.PackageID // variable-1 -> package
	deps    map[debian.PackageID][][]debian.PackageID
	clauses [][]int
	roots   []packageRoot
	base    []debian.PackageID // base names' satisfiers that are forced (single choice)
	baseSat [][]debian.PackageID
	nvars   int
	s       *solver.Solver
}

func (c *Checker) newPkgProblem(base []string, roots []packageRoot) *pkgProblem {
	pp := &pkgProblem{idx: c.idx, vars: map[debian.PackageID]int{}, deps: map[debian.PackageID][][]debian.PackageID{}, roots: roots}
	var queue []debian.PackageID
	visit := func(id debian.PackageID) {
		if _, ok := pp.vars[id]; !ok {
			pp.ids = append(pp.ids, id)
			pp.vars[id] = len(pp.ids)
			queue = append(queue, id)
		}
	}
	sat := c.requestSatisfiers
	for _, n := range base {
		s := sat(n)
		pp.baseSat = append(pp.baseSat, s)
		for _, id := range s {
			visit(id)
		}
	}
	rootSat := make([][]debian.PackageID, len(roots))
	for i, r := range roots {
		rootSat[i] = sat(r.name)
		for _, id := range rootSat[i] {
			visit(id)
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		p := c.idx.Package(id)
		var groups [][]debian.PackageID
		for _, g := range append(slices.Clone(p.PreDepends), p.Depends...) {
			var s []debian.PackageID
			for _, alt := range g {
				for _, x := range c.idx.Satisfiers(alt) {
					if !slices.Contains(s, x) {
						s = append(s, x)
					}
				}
			}
			groups = append(groups, s)
			for _, x := range s {
				visit(x)
			}
		}
		pp.deps[id] = groups
	}
	pp.nvars = len(pp.ids) + len(roots)
	for i := range roots {
		pp.roots[i].sel = len(pp.ids) + 1 + i
	}
	lits := func(ids []debian.PackageID) []int {
		out := make([]int, 0, len(ids)+1)
		for _, id := range ids {
			out = append(out, pp.vars[id])
		}
		return out
	}
	for _, s := range pp.baseSat {
		pp.clauses = append(pp.clauses, lits(s))
	}
	for i, r := range pp.roots {
		pp.clauses = append(pp.clauses, append([]int{-r.sel}, lits(rootSat[i])...))
	}
	seen := map[[2]int]bool{}
	for _, id := range pp.ids {
		v := pp.vars[id]
		for _, g := range pp.deps[id] {
			pp.clauses = append(pp.clauses, append([]int{-v}, lits(g)...))
		}
		p := c.idx.Package(id)
		for _, rel := range append(slices.Clone(p.Conflicts), p.Breaks...) {
			for _, o := range c.idx.Satisfiers(rel) {
				w, ok := pp.vars[o]
				if !ok || o == id {
					continue
				}
				k := [2]int{min(v, w), max(v, w)}
				if !seen[k] {
					seen[k] = true
					pp.clauses = append(pp.clauses, []int{-v, -w})
				}
			}
		}
	}
	return pp
}

// requestSatisfiers is what asking apt for a package by name installs: the real package
// when there is one (never another that merely provides the name), else its provider.
func (c *Checker) requestSatisfiers(name string) []debian.PackageID {
	if id, ok := c.idx.Candidate(name); ok {
		return []debian.PackageID{id}
	}
	return c.idx.Providers(name)
}

// unsat reports whether the base system plus the roots at the given positions cannot be
// installed together. Each question gets a fresh solver with the roots as unit clauses:
// gophersat's Assume was seen to return models that break the assumptions, and a fresh
// solve of the closure takes a few milliseconds.
func (pp *pkgProblem) unsat(active []int) bool {
	on := map[int]bool{}
	for _, i := range active {
		on[i] = true
	}
	cnf := make([][]int, 0, len(pp.clauses)+len(pp.roots))
	cnf = append(cnf, pp.clauses...)
	for i, r := range pp.roots {
		if on[i] {
			cnf = append(cnf, []int{r.sel})
		} else {
			cnf = append(cnf, []int{-r.sel})
		}
	}
	pp.s = solver.New(solver.ParseSliceNb(cnf, pp.nvars))
	return pp.s.Solve() == solver.Unsat
}

// model returns the packages installed in a solution for the roots at active (after a
// satisfiable unsat call), or nil.
func (pp *pkgProblem) model(active []int) map[debian.PackageID]bool {
	if pp.unsat(active) {
		return nil
	}
	m := pp.s.Model()
	out := map[debian.PackageID]bool{}
	for i, id := range pp.ids {
		if m[i] {
			out[id] = true
		}
	}
	return out
}

// core finds a minimal set of roots (positions into pp.roots) among cands that cannot be
// installed together with the base system (QuickXplain: few solver calls when the set is
// small, as conflicts usually are).
func (pp *pkgProblem) core(cands []int) []int {
	var qx func(background, delta, c []int) []int
	qx = func(background, delta, c []int) []int {
		if len(delta) > 0 && pp.unsat(background) {
			return nil
		}
		if len(c) == 1 {
			return c
		}
		c1, c2 := c[:len(c)/2], c[len(c)/2:]
		d2 := qx(append(slices.Clone(background), c1...), c1, c2)
		d1 := qx(append(slices.Clone(background), d2...), d2, c1)
		return append(d1, d2...)
	}
	if !pp.unsat(cands) {
		return nil
	}
	if pp.unsat(nil) {
		return []int{} // the base system alone
	}
	out := qx(nil, nil, cands)
	sort.Ints(out)
	return out
}

// packageFindings judges the packages of r with its layers applied against the index.
func (c *Checker) packageFindings(r *recipe.Recipe) []finding {
	var layers []catalog.Layer
	for _, id := range r.Layers {
		if l, ok := c.cat.Layer(id); ok {
			layers = append(layers, l)
		}
	}
	eff := apply(r, layers)
	owners := map[string][]string{}
	var names []string
	addOwner := func(p, who string) {
		if _, ok := owners[p]; !ok {
			names = append(names, p)
		}
		if !slices.Contains(owners[p], who) {
			owners[p] = append(owners[p], who)
		}
	}
	for _, l := range layers {
		for _, p := range l.Packages {
			addOwner(p, l.ID)
		}
	}
	for _, p := range r.Packages {
		addOwner(p, "recipe")
	}
	sort.Strings(names)

	base := append(slices.Clone(c.minbase), ImageBasePackages()...)
	base = append(base, ImpliedPackages(eff)...)

	var out []finding
	var roots []packageRoot
	for _, n := range names {
		who := owners[n]
		switch {
		case !c.idx.Exists(n):
			f := finding{Objection: Objection{
				Code: ObjUnknownPackage, Level: LevelPackages, Packages: []string{n}, Layers: layerOwners(who),
				Reason: fmt.Sprintf("package %s (%s) does not exist in %s", n, c.ownerWords(who), c.where),
			}, roots: []string{n}}
			if s := c.idx.Suggest(n); s != "" {
				f.Reason += fmt.Sprintf("; did you mean %s?", s)
				f.alternatives = []string{s}
			}
			out = append(out, f)
		case !c.idx.IsReal(n) && len(c.idx.Providers(n)) > 1:
			var provs []string
			for _, id := range c.idx.Providers(n) {
				provs = append(provs, c.idx.Package(id).Name)
			}
			shown := provs
			if len(shown) > 6 {
				shown = shown[:6]
			}
			out = append(out, finding{Objection: Objection{
				Code: ObjVirtualPackage, Level: LevelPackages, Packages: []string{n}, Layers: layerOwners(who),
				Reason: fmt.Sprintf("%s (%s) is a virtual package that %d packages provide (%s%s); name the one you want", n, c.ownerWords(who), len(provs), strings.Join(shown, ", "), map[bool]string{true: ", …"}[len(provs) > len(shown)]),
			}, roots: []string{n}, alternatives: shown[:min(3, len(shown))]})
		default:
			roots = append(roots, packageRoot{name: n, owners: who})
		}
	}
	if len(roots) == 0 && len(base) == 0 {
		return out
	}
	pp := c.newPkgProblem(base, roots)
	all := make([]int, len(roots))
	for i := range all {
		all[i] = i
	}
	active := all
	for len(active) > 0 || pp.unsat(nil) {
		core := pp.core(active)
		if core == nil {
			break
		}
		if len(core) == 0 {
			out = append(out, finding{Objection: Objection{
				Code: ObjUninstallable, Level: LevelPackages, Layers: []string{}, Packages: []string{},
				Reason: fmt.Sprintf("the base system itself cannot be installed from %s; the package index may be incomplete", c.where),
			}})
			break
		}
		out = append(out, c.explainCore(pp, core))
		active = slices.DeleteFunc(slices.Clone(active), func(i int) bool { return slices.Contains(core, i) })
	}
	return out
}

func layerOwners(who []string) []string {
	out := []string{}
	for _, w := range who {
		if w != "recipe" {
			out = append(out, w)
		}
	}
	return out
}

// ownerWords says where a package comes from: "from layer GNOME (gnome)", "named in the
// recipe".
func (c *Checker) ownerWords(who []string) string {
	var parts []string
	var ls []string
	for _, w := range who {
		if w == "recipe" {
			parts = append(parts, "named in the recipe")
		} else {
			ls = append(ls, fmt.Sprintf("%s (%s)", c.title(w), w))
		}
	}
	if len(ls) == 1 {
		parts = append(parts, "from layer "+ls[0])
	} else if len(ls) > 1 {
		parts = append(parts, "from layers "+joinAnd(ls))
	}
	return strings.Join(parts, " and ")
}

// explainCore turns a minimal set of requests that cannot be installed together into an
// objection that names the chain that breaks.
func (c *Checker) explainCore(pp *pkgProblem, core []int) finding {
	var names, lays []string
	for _, i := range core {
		r := pp.roots[i]
		names = append(names, r.name)
		for _, l := range layerOwners(r.owners) {
			if !slices.Contains(lays, l) {
				lays = append(lays, l)
			}
		}
	}
	f := finding{Objection: Objection{Level: LevelPackages, Packages: names, Layers: lays}, roots: names}
	baseForced := pp.forced(pp.baseForcedStart())

	if len(core) == 1 {
		r := pp.roots[core[0]]
		f.Code = ObjUninstallable
		f.Chain = c.deadChain(pp, r.name, baseForced)
		f.Reason = fmt.Sprintf("package %s (%s) cannot be installed", r.name, c.ownerWords(r.owners))
		if len(f.Chain) > 0 {
			f.Reason += ": " + f.Chain[len(f.Chain)-1]
		} else {
			f.Reason += " together with the base system: its dependencies cannot all be met at once"
		}
		return f
	}
	f.Code = ObjPackageConflict
	// Prefer what each request forces (dependencies without alternatives): a conflict
	// between those is certain. Otherwise look at one way of installing each.
	sets := make([]map[debian.PackageID]debian.PackageID, len(core)) // package -> parent
	for k, i := range core {
		sets[k] = pp.forcedFrom(pp.roots[i].name)
	}
	a, b, x, y, rel := c.findClash(pp, core, sets)
	if rel == "" {
		for k, i := range core {
			sets[k] = pp.modelFrom(pp.roots[i].name, []int{i})
		}
		a, b, x, y, rel = c.findClash(pp, core, sets)
	}
	var who []string
	for _, i := range core {
		r := pp.roots[i]
		who = append(who, fmt.Sprintf("%s (%s)", r.name, c.ownerWords(r.owners)))
	}
	f.Reason = fmt.Sprintf("packages %s cannot be installed together", joinAnd(who))
	if rel != "" {
		f.Chain = append(f.Chain, pathSteps(pp, sets[a], x)...)
		f.Chain = append(f.Chain, pathSteps(pp, sets[b], y)...)
		f.Chain = append(f.Chain, rel)
		f.Reason += ": " + rel
		if px := pp.idx.Package(x).Name; px != pp.roots[core[a]].name {
			f.Reason += fmt.Sprintf(" (%s needs %s)", pp.roots[core[a]].name, px)
		}
		if py := pp.idx.Package(y).Name; py != pp.roots[core[b]].name {
			f.Reason += fmt.Sprintf(" (%s needs %s)", pp.roots[core[b]].name, py)
		}
	}
	return f
}

// findClash looks for x in one set and y in another that conflict; it returns the set
// positions, the packages and the relation in words ("" when none).
func (c *Checker) findClash(pp *pkgProblem, core []int, sets []map[debian.PackageID]debian.PackageID) (int, int, debian.PackageID, debian.PackageID, string) {
	for a := range sets {
		for b := range sets {
			if a == b || sets[a] == nil || sets[b] == nil {
				continue
			}
			xs := keysSorted(pp, sets[a])
			for _, x := range xs {
				p := pp.idx.Package(x)
				for _, kind := range []struct {
					verb string
					rels []debian.Relation
				}{{"conflicts with", p.Conflicts}, {"breaks", p.Breaks}} {
					for _, rel := range kind.rels {
						for _, y := range pp.idx.Satisfiers(rel) {
							if y == x {
								continue
							}
							if _, ok := sets[b][y]; ok {
								return a, b, x, y, fmt.Sprintf("%s %s %s", p.Name, kind.verb, relWords(pp, rel, y))
							}
						}
					}
				}
			}
		}
	}
	return 0, 0, 0, 0, ""
}

func relWords(pp *pkgProblem, rel debian.Relation, y debian.PackageID) string {
	yp := pp.idx.Package(y)
	s := rel.String()
	if rel.Name != yp.Name {
		s += fmt.Sprintf(", which %s provides", yp.Name)
	} else if rel.Op != "" {
		s += fmt.Sprintf(" (it is %s)", yp.Version)
	}
	return s
}

func keysSorted(pp *pkgProblem, m map[debian.PackageID]debian.PackageID) []debian.PackageID {
	out := make([]debian.PackageID, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b debian.PackageID) int {
		return strings.Compare(pp.idx.Package(a).Name, pp.idx.Package(b).Name)
	})
	return out
}

// pathSteps describes how a root reaches x through parents: "a depends on b", ...
func pathSteps(pp *pkgProblem, parents map[debian.PackageID]debian.PackageID, x debian.PackageID) []string {
	var chain []debian.PackageID
	for cur := x; ; {
		chain = append(chain, cur)
		par, ok := parents[cur]
		if !ok || par == cur || len(chain) > 20 {
			break
		}
		cur = par
	}
	slices.Reverse(chain)
	var out []string
	for i := 1; i < len(chain); i++ {
		out = append(out, fmt.Sprintf("%s depends on %s", pp.idx.Package(chain[i-1]).Name, pp.idx.Package(chain[i]).Name))
	}
	return out
}

func (pp *pkgProblem) request(name string) []debian.PackageID {
	if id, ok := pp.idx.Candidate(name); ok {
		return []debian.PackageID{id}
	}
	return pp.idx.Providers(name)
}

func (pp *pkgProblem) baseForcedStart() []debian.PackageID {
	var out []debian.PackageID
	for _, s := range pp.baseSat {
		if len(s) == 1 {
			out = append(out, s[0])
		}
	}
	return out
}

// forced returns the packages that start forces through dependencies that leave no
// choice, each mapped to the package that pulled it in (a start maps to itself).
func (pp *pkgProblem) forced(start []debian.PackageID) map[debian.PackageID]debian.PackageID {
	par := map[debian.PackageID]debian.PackageID{}
	queue := slices.Clone(start)
	for _, s := range start {
		par[s] = s
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, g := range pp.deps[id] {
			if len(g) == 1 {
				if _, ok := par[g[0]]; !ok {
					par[g[0]] = id
					queue = append(queue, g[0])
				}
			}
		}
	}
	return par
}

func (pp *pkgProblem) forcedFrom(name string) map[debian.PackageID]debian.PackageID {
	s := pp.request(name)
	if len(s) != 1 {
		return nil
	}
	return pp.forced(s)
}

// modelFrom installs one root (with the base system) and returns the packages reachable
// from it in that solution, with parents.
func (pp *pkgProblem) modelFrom(name string, active []int) map[debian.PackageID]debian.PackageID {
	m := pp.model(active)
	if m == nil {
		return nil
	}
	par := map[debian.PackageID]debian.PackageID{}
	var queue []debian.PackageID
	for _, s := range pp.request(name) {
		if m[s] {
			par[s] = s
			queue = append(queue, s)
			break
		}
	}
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		for _, g := range pp.deps[id] {
			for _, x := range g {
				if m[x] {
					if _, ok := par[x]; !ok {
						par[x] = id
						queue = append(queue, x)
					}
					break
				}
			}
		}
	}
	return par
}

// deadChain explains why a single request cannot be installed: it follows dependencies
// whose every choice is unusable down to a cause — a dependency the index cannot meet, or
// a conflict with a package the base system needs.
func (c *Checker) deadChain(pp *pkgProblem, name string, baseForced map[debian.PackageID]debian.PackageID) []string {
	type cause struct {
		step string
		next debian.PackageID
		end  bool
	}
	dead := map[debian.PackageID]cause{}
	for _, id := range pp.ids {
		p := pp.idx.Package(id)
		if _, inBase := baseForced[id]; inBase {
			continue
		}
		for gi, g := range pp.deps[id] {
			if len(g) == 0 {
				dead[id] = cause{step: fmt.Sprintf("%s depends on %s, which %s does not have%s", p.Name, groupText(p, gi), c.where, c.haveVersions(p, gi)), end: true}
				break
			}
		}
		if _, ok := dead[id]; ok {
			continue
		}
		for _, kind := range []struct {
			verb string
			rels []debian.Relation
		}{{"conflicts with", p.Conflicts}, {"breaks", p.Breaks}} {
			for _, rel := range kind.rels {
				for _, y := range pp.idx.Satisfiers(rel) {
					if _, ok := baseForced[y]; ok && y != id {
						dead[id] = cause{step: fmt.Sprintf("%s %s %s, which the base system needs", p.Name, kind.verb, relWords(pp, rel, y)), end: true}
					}
				}
			}
		}
	}
	for changed := true; changed; {
		changed = false
		for _, id := range pp.ids {
			if _, ok := dead[id]; ok {
				continue
			}
			p := pp.idx.Package(id)
			for gi, g := range pp.deps[id] {
				all := true
				for _, x := range g {
					if _, ok := dead[x]; !ok {
						all = false
						break
					}
				}
				if all {
					dead[id] = cause{step: fmt.Sprintf("%s depends on %s", p.Name, groupText(p, gi)), next: g[0]}
					changed = true
					break
				}
			}
		}
	}
	var out []string
	s := pp.request(name)
	if len(s) == 0 {
		return nil
	}
	cur := s[0]
	for range 30 {
		cs, ok := dead[cur]
		if !ok {
			return nil // not explained by this simple analysis
		}
		out = append(out, cs.step)
		if cs.end {
			return out
		}
		cur = cs.next
	}
	return out
}

// groupText renders the gi-th dependency group (Pre-Depends first) of p.
func groupText(p *debian.Package, gi int) string {
	groups := append(slices.Clone(p.PreDepends), p.Depends...)
	if gi >= len(groups) {
		return "?"
	}
	var alts []string
	for _, r := range groups[gi] {
		alts = append(alts, r.String())
	}
	return strings.Join(alts, " | ")
}

// haveVersions says which versions the index has of the first alternative of a group
// whose constraint failed.
func (c *Checker) haveVersions(p *debian.Package, gi int) string {
	groups := append(slices.Clone(p.PreDepends), p.Depends...)
	if gi >= len(groups) || len(groups[gi]) == 0 {
		return ""
	}
	r := groups[gi][0]
	if id, ok := c.idx.Candidate(r.Name); ok && r.Op != "" {
		return fmt.Sprintf(" (it has %s %s)", r.Name, c.idx.Package(id).Version)
	}
	return ""
}
