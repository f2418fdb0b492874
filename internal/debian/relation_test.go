package debian

import (
	"errors"
	"reflect"
	"testing"
)

func TestParseRelations(t *testing.T) {
	got, err := ParseRelations("libc6 (>= 2.34), python3:any, default-mta | mail-transport-agent, foo (<< 2:1.0-1~) [amd64 !i386] <!nocheck>, bar (> 1), baz(=1.0),")
	if err != nil {
		t.Fatal(err)
	}
	want := [][]Relation{
		{{Name: "libc6", Op: OpGE, Version: "2.34"}},
		{{Name: "python3", ArchQual: "any"}},
		{{Name: "default-mta"}, {Name: "mail-transport-agent"}},
		{{Name: "foo", Op: OpLT, Version: "2:1.0-1~"}},
		{{Name: "bar", Op: OpGE, Version: "1"}}, // obsolete ">" means ">="
		{{Name: "baz", Op: OpEQ, Version: "1.0"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if s := got[3][0].String(); s != "foo (<< 2:1.0-1~)" {
		t.Errorf("String() = %q", s)
	}
	if got, _ := ParseRelations("  "); got != nil {
		t.Errorf("empty field = %v", got)
	}
	for _, bad := range []string{"Foo", "a", "foo (", "foo (~ 1)", "foo (>= )", "foo:", "foo [amd64", "foo (>= 1) (<< 2)", "foo bar"} {
		if _, err := ParseRelations(bad); !errors.Is(err, ErrBadRelation) {
			t.Errorf("ParseRelations(%q) = %v, want ErrBadRelation", bad, err)
		}
	}
	if _, err := ParseRelationList("a1 | b1"); !errors.Is(err, ErrBadRelation) {
		t.Errorf("alternatives in a list: %v", err)
	}
}

func TestRelationSatisfiedBy(t *testing.T) {
	for _, tc := range []struct {
		rel  Relation
		v    string
		want bool
	}{
		{Relation{Name: "a"}, "", true},
		{Relation{Name: "a"}, "1.0", true},
		{Relation{Name: "a", Op: OpGE, Version: "1.0"}, "", false}, // unversioned provides
		{Relation{Name: "a", Op: OpGE, Version: "1.0"}, "1.0", true},
		{Relation{Name: "a", Op: OpGE, Version: "1.0"}, "1.0~rc1", false},
		{Relation{Name: "a", Op: OpGT, Version: "1.0"}, "1.0", false},
		{Relation{Name: "a", Op: OpGT, Version: "1.0"}, "1.0-1", true},
		{Relation{Name: "a", Op: OpLT, Version: "2"}, "1:1", false},
		{Relation{Name: "a", Op: OpLE, Version: "2"}, "2", true},
		{Relation{Name: "a", Op: OpEQ, Version: "2.0"}, "2.0-0", true},
		{Relation{Name: "a", Op: OpEQ, Version: "2.0"}, "2.0-1", false},
	} {
		if got := tc.rel.SatisfiedBy(tc.v); got != tc.want {
			t.Errorf("%s satisfied by %q = %v", tc.rel, tc.v, got)
		}
	}
}
