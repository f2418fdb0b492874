package httpapi

import (
	"encoding/json"
	"strings"
	"testing"

	"debate/internal/catalog"
	"debate/internal/resolve"
)

func TestLayerCatalogRoutes(t *testing.T) {
	ts := startServer(t, serverOpts{})

	r := ts.get("/api/v1/layers?kind=platform")
	var list layersBody
	if r.status != 200 || json.Unmarshal(r.body, &list) != nil {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	if list.Count < 4 || list.Count != len(list.Layers) {
		t.Fatalf("%d platforms listed", list.Count)
	}
	for _, l := range list.Layers {
		if l.Kind != "platform" {
			t.Fatalf("kind filter let %s (%s) through", l.ID, l.Kind)
		}
	}
	r = ts.get("/api/v1/layers?q=browser&kind=talking-points")
	if err := json.Unmarshal(r.body, &list); err != nil || list.Count == 0 {
		t.Fatalf("search: %d %s", r.status, r.body)
	}

	if r = ts.get("/api/v1/layers?kind=speeches"); r.status != 400 || r.errorCode() != "invalid_field" || !strings.Contains(string(r.body), `"field":"kind"`) {
		t.Fatalf("bad kind: %d %s", r.status, r.body)
	}

	r = ts.get("/api/v1/layers/gnome")
	var l catalog.Layer
	if r.status != 200 || json.Unmarshal(r.body, &l) != nil || l.ID != "gnome" || len(l.Packages) == 0 {
		t.Fatalf("layer: %d %s", r.status, r.body)
	}
	if r = ts.get("/api/v1/layers/no-such-layer"); r.status != 404 || r.errorCode() != "not_found" {
		t.Fatalf("missing layer: %d %s", r.status, r.body)
	}
}

func TestRecipeCheckRaisesObjectionsWithResolutions(t *testing.T) {
	ts := startServer(t, serverOpts{})
	const recipeYAML = "apiVersion: debate/v1\nname: clash\nbase: {distribution: debian, release: bookworm}\nlayers: [gnome, kde-plasma]\n"

	r := ts.request("POST", "/api/v1/recipes/check?last=add-layer:kde-plasma", recipeYAML, "Content-Type", "application/yaml")
	var rep resolve.Report
	if r.status != 200 || json.Unmarshal(r.body, &rep) != nil {
		t.Fatalf("check: %d %s", r.status, r.body)
	}
	if rep.Sustained || len(rep.Objections) == 0 || rep.PackagesChecked || rep.Note == "" {
		t.Fatalf("verdict: %+v", rep)
	}
	o := rep.Objections[0]
	if !strings.Contains(strings.Join(o.Layers, ","), "gnome") || o.Reason == "" {
		t.Fatalf("objection does not name the layers: %+v", o)
	}
	kinds := map[string]bool{}
	for _, res := range o.Resolutions {
		kinds[res.Kind] = true
	}
	if !kinds[resolve.Concede] || !kinds[resolve.Withdraw] {
		t.Fatalf("resolutions %v lack concede or withdraw", kinds)
	}

	// Applying the withdraw resolution gives a sustained recipe.
	fixed := "apiVersion: debate/v1\nname: clash\nbase: {distribution: debian, release: bookworm}\nlayers: [gnome]\n"
	r = ts.request("POST", "/api/v1/recipes/check", fixed, "Content-Type", "application/yaml")
	if err := json.Unmarshal(r.body, &rep); err != nil || r.status != 200 || !rep.Sustained {
		t.Fatalf("after withdrawing: %d %s", r.status, r.body)
	}

	// An invalid recipe is 422 with every problem, as for builds.
	r = ts.request("POST", "/api/v1/recipes/check", `{"apiVersion":"debate/v1","name":"Bad Name","base":{"distribution":"debian","release":"bookworm"},"packages":["Nope!"]}`, "Content-Type", "application/json")
	if r.status != 422 || r.errorCode() != "invalid_recipe" || !strings.Contains(string(r.body), "packages[0]") || !strings.Contains(string(r.body), `"path":"name"`) {
		t.Fatalf("invalid recipe: %d %s", r.status, r.body)
	}
	if r = ts.request("POST", "/api/v1/recipes/check?last=dance:gnome", fixed, "Content-Type", "application/yaml"); r.status != 400 || !strings.Contains(string(r.body), `"field":"last"`) {
		t.Fatalf("bad last change: %d %s", r.status, r.body)
	}
}
