package debian

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"

	"debate/internal/spelling"
)

// Package is one binary package version of a Packages index, reduced to what checking
// installability needs.
type Package struct {
	Name         string
	Version      string
	Architecture string
	MultiArch    string
	Essential    bool
	Priority     string
	Section      string
	// Summary is the first line of the description.
	Summary string
	// Suite is the archive suite the paragraph came from (bookworm, bookworm-security, …).
	Suite      string
	PreDepends [][]Relation
	Depends    [][]Relation
	Conflicts  []Relation
	Breaks     []Relation
	Provides   []Relation
}

// PackageID identifies a package version within one Index.
type PackageID int32

// Index is the set of binary packages of one architecture drawn from one or more Packages
// files. It is read-only once built, so one Index serves concurrent checks.
type Index struct {
	arch     string
	pkgs     []Package
	byName   map[string][]PackageID // versions of a name, newest first
	provides map[string][]PackageID // virtual name -> candidate packages providing it
}

// IndexPart is one Packages file (uncompressed text) and the suite it belongs to.
type IndexPart struct {
	Suite string
	R     io.Reader
}

// BuildIndex reads Packages files for arch; paragraphs of other architectures are
// skipped ("all" always belongs). A name and version found in two suites is kept once,
// from the first part that has it.
func BuildIndex(arch string, parts ...IndexPart) (*Index, error) {
	x := &Index{arch: arch, byName: map[string][]PackageID{}, provides: map[string][]PackageID{}}
	intern := map[string]string{}
	x.pkgs = make([]Package, 0, 1<<16)
	for _, p := range parts {
		err := readPackages(p.R, func(pkg Package) {
			if pkg.Architecture != arch && pkg.Architecture != "all" {
				return
			}
			for _, id := range x.byName[pkg.Name] {
				if x.pkgs[id].Version == pkg.Version {
					return
				}
			}
			pkg.Suite = p.Suite
			internPackage(&pkg, intern)
			id := PackageID(len(x.pkgs))
			x.pkgs = append(x.pkgs, pkg)
			x.byName[pkg.Name] = append(x.byName[pkg.Name], id)
		})
		if err != nil {
			return nil, fmt.Errorf("reading the %s Packages index: %w", p.Suite, err)
		}
	}
	for _, ids := range x.byName {
		sort.SliceStable(ids, func(i, j int) bool {
			return CompareVersions(x.pkgs[ids[i]].Version, x.pkgs[ids[j]].Version) > 0
		})
	}
	// Only candidates provide: apt installs the newest version of each name (every suite
	// has the same default priority), so an older version's Provides can never be used.
	for _, ids := range x.byName {
		c := ids[0]
		for _, pr := range x.pkgs[c].Provides {
			if !slices.Contains(x.provides[pr.Name], c) {
				x.provides[pr.Name] = append(x.provides[pr.Name], c)
			}
		}
	}
	for _, ids := range x.provides {
		slices.SortFunc(ids, func(a, b PackageID) int { return strings.Compare(x.pkgs[a].Name, x.pkgs[b].Name) })
	}
	return x, nil
}

func internPackage(p *Package, intern map[string]string) {
	in := func(s string) string {
		if v, ok := intern[s]; ok {
			return v
		}
		intern[s] = s
		return s
	}
	p.Name = in(p.Name)
	p.Architecture = in(p.Architecture)
	p.Priority = in(p.Priority)
	p.Section = in(p.Section)
	p.MultiArch = in(p.MultiArch)
	for _, g := range [][][]Relation{p.PreDepends, p.Depends} {
		for _, alts := range g {
			for i := range alts {
				alts[i].Name = in(alts[i].Name)
			}
		}
	}
	for _, l := range [][]Relation{p.Conflicts, p.Breaks, p.Provides} {
		for i := range l {
			l[i].Name = in(l[i].Name)
		}
	}
}

// readPackages streams paragraphs of a Packages file, keeping only the fields Package
// needs (the file is ~50 MB for bookworm main; this avoids holding it in memory).
func readPackages(r io.Reader, fn func(Package)) error {
	br := bufio.NewReaderSize(r, 1<<20)
	var cur Package
	var have bool
	var field string // the field the previous line belonged to, for continuations
	var errs []error
	lineNo := 0
	flush := func() {
		if have {
			if cur.Name == "" || cur.Version == "" {
				errs = append(errs, fmt.Errorf("line %d: a paragraph without Package or Version", lineNo))
			} else {
				fn(cur)
			}
		}
		cur, have, field = Package{}, false, ""
	}
	rel := func(name, value string) [][]Relation {
		g, err := ParseRelations(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s of %s: %w", lineNo, name, cur.Name, err))
		}
		return g
	}
	list := func(name, value string) []Relation {
		l, err := ParseRelationList(value)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s of %s: %w", lineNo, name, cur.Name, err))
		}
		return l
	}
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A line over 1 MiB: only descriptions or file lists get that long.
			rest, err2 := br.ReadBytes('\n')
			line = append(slices.Clone(line), rest...)
			err = err2
		}
		if len(line) > 0 {
			lineNo++
			line = bytes.TrimRight(line, "\r\n")
			switch {
			case len(bytes.TrimSpace(line)) == 0:
				flush()
			case line[0] == ' ' || line[0] == '\t':
				// Continuations of the fields kept here never matter (relationship
				// fields fit on one line in Packages files; only the summary line of
				// the description is kept), except a wrapped relationship field.
				if field != "" {
					more := strings.TrimSpace(string(line))
					switch field {
					case "depends":
						cur.Depends = append(cur.Depends, rel("Depends", more)...)
					case "pre-depends":
						cur.PreDepends = append(cur.PreDepends, rel("Pre-Depends", more)...)
					case "conflicts":
						cur.Conflicts = append(cur.Conflicts, list("Conflicts", more)...)
					case "breaks":
						cur.Breaks = append(cur.Breaks, list("Breaks", more)...)
					case "provides":
						cur.Provides = append(cur.Provides, list("Provides", more)...)
					}
				}
			default:
				i := bytes.IndexByte(line, ':')
				if i < 0 {
					return fmt.Errorf("line %d: expected \"Field: value\", got %q", lineNo, line)
				}
				have = true
				name := fieldName(line[:i])
				field = ""
				if name == "" {
					continue
				}
				value := string(bytes.TrimSpace(line[i+1:]))
				switch name {
				case "package":
					cur.Name = value
				case "version":
					cur.Version = value
				case "architecture":
					cur.Architecture = value
				case "multi-arch":
					cur.MultiArch = value
				case "essential":
					cur.Essential = value == "yes"
				case "priority":
					cur.Priority = value
				case "section":
					cur.Section = value
				case "description":
					cur.Summary = value
				case "depends":
					cur.Depends, field = rel("Depends", value), name
				case "pre-depends":
					cur.PreDepends, field = rel("Pre-Depends", value), name
				case "conflicts":
					cur.Conflicts, field = list("Conflicts", value), name
				case "breaks":
					cur.Breaks, field = list("Breaks", value), name
				case "provides":
					cur.Provides, field = list("Provides", value), name
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", lineNo, err)
		}
		if len(errs) > 10 {
			break
		}
	}
	flush()
	if len(errs) > 0 {
		return fmt.Errorf("%d malformed paragraphs, first: %w", len(errs), errs[0])
	}
	return nil
}

// fieldName returns the lower-case name of a field readPackages keeps, or "".
func fieldName(b []byte) string {
	// The archive writes the canonical spelling: match it without allocating, then
	// fall back to the case-insensitive comparison the format allows.
	switch string(b) {
	case "Package":
		return "package"
	case "Version":
		return "version"
	case "Architecture":
		return "architecture"
	case "Multi-Arch":
		return "multi-arch"
	case "Essential":
		return "essential"
	case "Priority":
		return "priority"
	case "Section":
		return "section"
	case "Description":
		return "description"
	case "Depends":
		return "depends"
	case "Pre-Depends":
		return "pre-depends"
	case "Conflicts":
		return "conflicts"
	case "Breaks":
		return "breaks"
	case "Provides":
		return "provides"
	}
	for _, n := range []string{"package", "version", "architecture", "multi-arch", "essential", "priority", "section", "description", "depends", "pre-depends", "conflicts", "breaks", "provides"} {
		if len(b) == len(n) && bytes.EqualFold(b, []byte(n)) {
			return n
		}
	}
	return ""
}

// Arch is the index's architecture.
func (x *Index) Arch() string { return x.arch }

// Len is the number of package versions.
func (x *Index) Len() int { return len(x.pkgs) }

// NameCount is the number of distinct real package names.
func (x *Index) NameCount() int { return len(x.byName) }

// Package returns a package version by id.
func (x *Index) Package(id PackageID) *Package { return &x.pkgs[id] }

// Versions returns the ids of every version of a real package, newest first.
func (x *Index) Versions(name string) []PackageID { return x.byName[name] }

// Candidate is the version apt would install: the newest of the name (every suite of a
// release has the same default pin priority).
func (x *Index) Candidate(name string) (PackageID, bool) {
	ids := x.byName[name]
	if len(ids) == 0 {
		return 0, false
	}
	return ids[0], true
}

// IsReal reports whether a real package of that name exists.
func (x *Index) IsReal(name string) bool { return len(x.byName[name]) > 0 }

// Providers returns the candidate packages that provide name (a virtual package).
func (x *Index) Providers(name string) []PackageID { return x.provides[name] }

// Exists reports whether name can be asked for: a real package or a provided one.
func (x *Index) Exists(name string) bool { return x.IsReal(name) || len(x.provides[name]) > 0 }

// Satisfiers returns the candidate packages that satisfy a relation: the named package
// when its candidate version meets the constraint, and every candidate providing the name
// (an unversioned Provides meets only an unversioned relation; a versioned one must meet
// the constraint). A ":any" or ":native" qualifier needs no more in a one-architecture
// index; one naming another architecture matches nothing.
func (x *Index) Satisfiers(rel Relation) []PackageID {
	switch rel.ArchQual {
	case "", "any", "native", x.arch:
	default:
		return nil
	}
	var out []PackageID
	if c, ok := x.Candidate(rel.Name); ok && rel.SatisfiedBy(x.pkgs[c].Version) {
		out = append(out, c)
	}
	for _, p := range x.provides[rel.Name] {
		if slices.Contains(out, p) {
			continue
		}
		for _, pr := range x.pkgs[p].Provides {
			if pr.Name == rel.Name && rel.SatisfiedBy(pr.Version) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// Names returns every real package name, sorted.
func (x *Index) Names() []string {
	out := make([]string, 0, len(x.byName))
	for n := range x.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Suggest returns the closest real package name to a misspelt one, or "" when none is
// close enough to be a typo.
func (x *Index) Suggest(name string) string { return spelling.Nearest(name, maps.Keys(x.byName)) }
