package resolve

import (
	"os"
	"testing"

	"debate/internal/recipe"
)

// The recipe reference's complete example names catalog layers: it must compose and be
// sustained at the layer level.
func TestFullExampleLayersExist(t *testing.T) {
	data, err := os.ReadFile("../recipe/testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Parse(data, recipe.YAML)
	if err != nil {
		t.Fatal(err)
	}
	c := layerChecker(t)
	if rep := mustCheck(t, c, r, nil); !rep.Sustained {
		t.Errorf("full example:\n%s", rep)
	}
	if _, err := Compose(r, c.cat); err != nil {
		t.Errorf("compose: %v", err)
	}
}
