package debian

import (
	"bytes"
	"strings"
	"testing"
)

func TestParagraphsRoundTrip(t *testing.T) {
	in := "Package: a\nVersion: 1:2.0-1\nDescription: short\n more\n .\n end\n\n\nPackage: b\nProvides: x, y (= 1)\n"
	var ps []Paragraph
	if err := ReadParagraphs(strings.NewReader(in), func(p Paragraph) error { ps = append(ps, p); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].Get("version") != "1:2.0-1" || ps[1].Get("Provides") != "x, y (= 1)" {
		t.Fatalf("parsed %#v", ps)
	}
	var buf bytes.Buffer
	ps[0].WriteTo(&buf)
	if buf.String() != "Package: a\nVersion: 1:2.0-1\nDescription: short\n more\n .\n end\n\n" {
		t.Fatalf("round trip: %q", buf.String())
	}
	if got := ps[0].With("Filename", "pool/a.deb").Get("Filename"); got != "pool/a.deb" {
		t.Fatal(got)
	}
}

func TestParagraphErrors(t *testing.T) {
	for _, in := range []string{" orphan continuation\n", "Package a\n"} {
		if err := ReadParagraphs(strings.NewReader(in), func(Paragraph) error { return nil }); err == nil {
			t.Errorf("%q: no error", in)
		}
	}
}
