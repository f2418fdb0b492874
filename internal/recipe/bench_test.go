package recipe

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

func BenchmarkParseFull(b *testing.B) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := Parse(data, YAML)
		if err != nil {
			b.Fatal(err)
		}
		_ = r.Hash()
	}
}

// BenchmarkParseLarge: a recipe near the 1 MiB limit (1000 packages, 900 KiB of files).
func BenchmarkParseLarge(b *testing.B) {
	var s strings.Builder
	s.WriteString(minimalYAML + "packages:\n")
	for i := range 1000 {
		fmt.Fprintf(&s, "  - package-%d\n", i)
	}
	s.WriteString("files:\n")
	for i := range 4 {
		fmt.Fprintf(&s, "  - path: /srv/f%d\n    content: |\n", i)
		for range 225 << 10 / 64 {
			s.WriteString("      " + strings.Repeat("x", 63) + "\n")
		}
	}
	data := []byte(s.String())
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		r, err := Parse(data, YAML)
		if err != nil {
			b.Fatal(err)
		}
		_ = r.Hash()
	}
}
