package jobs

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"debate/internal/builder"
	"debate/internal/recipe"
	"debate/internal/store"
)

// BenchmarkSubmitCacheHit is the API's cache-hit path without HTTP: parse the recipe,
// compose, hash, read the scope's pins, find the succeeded build and its artifacts.
func BenchmarkSubmitCacheHit(b *testing.B) {
	st := migratedDB(b, 4)
	svc, err := NewService(st, nil, ServiceOptions{})
	if err != nil {
		b.Fatal(err)
	}
	doc, err := os.ReadFile("../../examples/minimal.yaml")
	if err != nil {
		b.Fatal(err)
	}
	r, err := recipe.Parse(doc, recipe.YAML)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	first, err := svc.Submit(ctx, r, "c")
	if err != nil {
		b.Fatal(err)
	}
	id := first.Status.Build.ID
	if _, _, err := st.ClaimBuild(ctx, id, "w", 1); err != nil {
		b.Fatal(err)
	}
	eff, _ := svc.Effective(r)
	pin := builder.Pinned{Suites: map[string]string{"bookworm": strings.Repeat("a", 64), "bookworm-updates": strings.Repeat("b", 64),
		"bookworm-security": strings.Repeat("c", 64)}, Tools: map[string]string{"mmdebstrap": "1.3.5-7", "apt": "2.6.1"}, Builder: builder.Version}
	data, _ := json.Marshal(pin)
	scope, base := pinScope(eff)
	if err := st.RecordPin(ctx, base, store.Pin{ScopeHash: scope, InputsHash: inputsHash(pin), Builder: pin.Builder, Pinned: data}); err != nil {
		b.Fatal(err)
	}
	arts := []store.Artifact{{Name: "minimal.iso", SHA256: strings.Repeat("d", 64), Size: 1 << 28, ContentType: "application/x-iso9660-image"},
		{Name: "minimal.manifest.json", SHA256: strings.Repeat("e", 64), Size: 1 << 16, ContentType: "application/json"}}
	if err := st.FinishSucceeded(ctx, id, "w", builder.BuildKey(eff.Hash(), pin), "", arts, store.Final{}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		r, err := recipe.Parse(doc, recipe.YAML)
		if err != nil {
			b.Fatal(err)
		}
		s, err := svc.Submit(ctx, r, "c")
		if err != nil || s.Outcome != OutcomeCacheHit {
			b.Fatalf("%+v %v", s, err)
		}
	}
}
