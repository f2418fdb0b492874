package resolve

import (
	"context"
	"strings"
	"sync"
	"testing"

	"debate/internal/catalog"
	"debate/internal/recipe"
)

func judgeRecipe(t *testing.T, layers, packages []string) *recipe.Recipe {
	t.Helper()
	r := &recipe.Recipe{APIVersion: recipe.APIVersion, Name: "judged",
		Base: recipe.Base{Distribution: "debian", Release: "bookworm"}, Layers: layers, Packages: packages}
	if err := recipe.Validate(r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestJudgeOfflineJudgesLayersOnly(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	j := &Judge{Catalog: cat, Offline: true}
	rep, err := j.Check(context.Background(), judgeRecipe(t, []string{"gnome", "kde-plasma"}, []string{"no-such-package-at-all"}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sustained || rep.PackagesChecked || !strings.Contains(rep.Note, "offline") {
		t.Fatalf("offline report: %+v", rep)
	}
	for _, o := range rep.Objections {
		if o.Level != "layers" {
			t.Fatalf("offline judge raised a %s objection: %s", o.Level, o.Reason)
		}
	}
}

func TestJudgeLoadsTheIndexOnceForConcurrentChecks(t *testing.T) {
	indexOrSkip(t) // the shared test cache holds a verified copy after this
	cat, _ := catalog.Default()
	var warnings []string
	var mu sync.Mutex
	j := &Judge{Catalog: cat, CacheDir: testIndexDir(), Warn: func(w string) { mu.Lock(); warnings = append(warnings, w); mu.Unlock() }}
	var wg sync.WaitGroup
	reports := make([]*Report, 4)
	errs := make([]error, 4)
	for i := range reports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reports[i], errs[i] = j.Check(context.Background(), judgeRecipe(t, nil, []string{"nano", "nanoo"}), nil)
		}()
	}
	wg.Wait()
	for i, rep := range reports {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !rep.PackagesChecked || rep.Sustained || len(rep.Objections) != 1 || !strings.Contains(rep.Objections[0].Reason, "nanoo") {
			t.Fatalf("report %d: %+v", i, rep)
		}
	}
	if len(j.indexes) != 1 {
		t.Fatalf("%d indexes loaded for one archive", len(j.indexes))
	}
	for _, ji := range j.indexes {
		if reports[0] == nil || ji.index == nil {
			t.Fatal("index not kept")
		}
	}
}
