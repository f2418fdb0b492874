package debian

import (
	"slices"
	"strings"
	"testing"
)

const testPackages = `Package: mta-a
Version: 1.0-1
Architecture: amd64
Provides: mail-transport-agent
Conflicts: mail-transport-agent
Description: first mail server
 long text: that is ignored

Package: mta-b
Version: 2.0
Architecture: all
Provides: mail-transport-agent, mta-a (= 1.5)
Depends: libfoo (>= 2) | libfoo-compat,
 libbar
Pre-Depends: dpkg (>= 1.19)
Breaks: old (<< 3)
Description: second

Package: libfoo
Version: 1.9
Architecture: amd64

Package: libfoo
Version: 2.1
Architecture: amd64

Package: libfoo
Version: 2.1
Architecture: amd64

Package: libarm
Version: 1
Architecture: arm64

`

const testPackagesUpdates = `Package: libfoo
Version: 2.1+deb12u1
Architecture: amd64
Section: libs

Package: mta-b
Version: 2.0
Architecture: all
Description: a duplicate of bookworm's, kept once
`

func testIndex(t *testing.T) *Index {
	t.Helper()
	x, err := BuildIndex("amd64",
		IndexPart{"bookworm", strings.NewReader(testPackages)},
		IndexPart{"bookworm-updates", strings.NewReader(testPackagesUpdates)})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func names(x *Index, ids []PackageID) []string {
	var out []string
	for _, id := range ids {
		p := x.Package(id)
		out = append(out, p.Name+"="+p.Version)
	}
	return out
}

func TestIndex(t *testing.T) {
	x := testIndex(t)
	if x.Len() != 5 || x.NameCount() != 3 {
		t.Fatalf("len %d names %d: %v", x.Len(), x.NameCount(), x.Names())
	}
	if x.IsReal("libarm") || x.Exists("libarm") {
		t.Error("another architecture's package is in the index")
	}
	c, ok := x.Candidate("libfoo")
	if !ok || x.Package(c).Version != "2.1+deb12u1" || x.Package(c).Suite != "bookworm-updates" || x.Package(c).Section != "libs" {
		t.Fatalf("candidate %+v", x.Package(c))
	}
	if got := names(x, x.Versions("libfoo")); !slices.Equal(got, []string{"libfoo=2.1+deb12u1", "libfoo=2.1", "libfoo=1.9"}) {
		t.Errorf("versions %v", got)
	}
	b, _ := x.Candidate("mta-b")
	pb := x.Package(b)
	if pb.Suite != "bookworm" || pb.Summary != "second" || len(pb.Depends) != 2 || len(pb.Depends[0]) != 2 || pb.Depends[1][0].Name != "libbar" ||
		pb.PreDepends[0][0] != (Relation{Name: "dpkg", Op: OpGE, Version: "1.19"}) || pb.Breaks[0].Version != "3" {
		t.Errorf("mta-b = %+v", pb)
	}
	if !x.Exists("mail-transport-agent") || x.IsReal("mail-transport-agent") {
		t.Error("virtual package")
	}
	for _, tc := range []struct {
		rel  Relation
		want []string
	}{
		{Relation{Name: "mail-transport-agent"}, []string{"mta-a=1.0-1", "mta-b=2.0"}},
		{Relation{Name: "mta-a"}, []string{"mta-a=1.0-1", "mta-b=2.0"}},
		{Relation{Name: "mta-a", Op: OpGE, Version: "1.2"}, []string{"mta-b=2.0"}}, // versioned provides
		{Relation{Name: "mta-a", Op: OpLT, Version: "1.2"}, []string{"mta-a=1.0-1"}},
		{Relation{Name: "mail-transport-agent", Op: OpGE, Version: "1"}, nil}, // unversioned provides
		{Relation{Name: "libfoo", Op: OpLT, Version: "2"}, nil},               // only the candidate counts
		{Relation{Name: "libfoo", Op: OpGE, Version: "2"}, []string{"libfoo=2.1+deb12u1"}},
		{Relation{Name: "libfoo", ArchQual: "any"}, []string{"libfoo=2.1+deb12u1"}},
		{Relation{Name: "libfoo", ArchQual: "i386"}, nil},
		{Relation{Name: "nothing"}, nil},
	} {
		if got := names(x, x.Satisfiers(tc.rel)); !slices.Equal(got, tc.want) {
			t.Errorf("Satisfiers(%s) = %v, want %v", tc.rel, got, tc.want)
		}
	}
	if s := x.Suggest("libfo"); s != "libfoo" {
		t.Errorf("Suggest = %q", s)
	}
	if s := x.Suggest("completely-different"); s != "" {
		t.Errorf("Suggest = %q", s)
	}
}

func TestIndexErrors(t *testing.T) {
	for _, bad := range []string{
		"Package: a\n", // no version
		"Package: a\nVersion: 1\nDepends: b (>= \n", // broken relation
		"Package a\n",
	} {
		if _, err := BuildIndex("amd64", IndexPart{"s", strings.NewReader(bad)}); err == nil {
			t.Errorf("BuildIndex(%q) succeeded", bad)
		}
	}
}
