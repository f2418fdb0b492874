package recipe

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestReferenceDocument keeps docs/recipe.md honest: its complete example is the tested
// testdata/full.yaml, byte for byte, and every schema field is documented.
func TestReferenceDocument(t *testing.T) {
	doc, err := os.ReadFile("../../docs/recipe.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	_, after, ok := strings.Cut(text, "## A complete example")
	if !ok {
		t.Fatal("docs/recipe.md has no complete example section")
	}
	_, block, ok := strings.Cut(after, "```yaml\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in the complete example section")
	}
	if block != string(readFull(t)) {
		t.Error("the complete example in docs/recipe.md differs from testdata/full.yaml")
	}
	var missing []string
	var walk func(reflect.Type)
	walk = func(ty reflect.Type) {
		for i := range ty.NumField() {
			f := ty.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !strings.Contains(text, "`"+name+"`") {
				missing = append(missing, name)
			}
			ft := f.Type
			for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				walk(ft)
			}
		}
	}
	walk(reflect.TypeOf(Recipe{}))
	if len(missing) > 0 {
		t.Errorf("fields not documented in docs/recipe.md: %v", missing)
	}
}
