package resolve

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"debate/internal/catalog"
	"debate/internal/recipe"
)

// mapCatalog is the smallest Catalog: the real one (embedded data files) comes later and
// these tests only need to pin down the composition rules.
type mapCatalog map[string]Layer

func (m mapCatalog) Layer(id string) (Layer, bool) {
	l, ok := m[id]
	return l, ok
}

func strp(s string) *string { return &s }

func testCatalog() mapCatalog {
	return mapCatalog{
		"alpha": {
			ID: "alpha", Kind: catalog.KindTalkingPoints,
			Packages: []string{"vim", "curl"},
			Files: []recipe.File{
				{Path: "/etc/shared", Content: strp("alpha\n")},
				{Path: "/etc/alpha", Content: strp("alpha only\n"), Mode: "0600"},
			},
			Services:      recipe.Services{Enable: []string{"ssh", "cron"}},
			Hostname:      "alpha",
			Locale:        "de_DE.UTF-8",
			Keyboard:      &recipe.Keyboard{Layout: "de", Variant: "nodeadkeys"},
			KernelCmdline: []string{"quiet", "loglevel=3"},
			Scripts:       []recipe.Script{{Name: "setup", Run: "echo alpha"}, {Name: "alpha-only", Run: "true"}},
		},
		"beta": {
			ID: "beta", Kind: catalog.KindRhetoric,
			Packages:      []string{"curl", "htop"},
			Files:         []recipe.File{{Path: "/etc/shared", Content: strp("beta\n")}},
			Services:      recipe.Services{Disable: []string{"ssh.service"}},
			Hostname:      "beta",
			Timezone:      "Europe/Paris",
			Keyboard:      &recipe.Keyboard{Layout: "fr"},
			KernelCmdline: []string{"loglevel=7"},
			Scripts:       []recipe.Script{{Name: "setup", Run: "echo beta"}},
		},
		"gnome": {ID: "gnome", Kind: catalog.KindRhetoric, Provides: []string{"desktop"}, Conflicts: []string{"desktop"}, Packages: []string{"gnome-core"}},
		"kde":   {ID: "kde", Kind: catalog.KindRhetoric, Provides: []string{"desktop"}, Conflicts: []string{"desktop"}, Packages: []string{"kde-plasma-desktop"}},
		"theme": {ID: "theme", Kind: catalog.KindClosingArgument, Requires: []string{"desktop"}},
		"tools": {ID: "tools", Kind: catalog.KindTalkingPoints, Requires: []string{"alpha"}},
		"bad":   {ID: "bad", Kind: catalog.KindPlatform, Files: []recipe.File{{Path: "/proc/x", Content: strp("")}}},
	}
}

func withLayers(layers ...string) *recipe.Recipe {
	return &recipe.Recipe{
		APIVersion: recipe.APIVersion,
		Name:       "composed",
		Base:       recipe.Base{Distribution: "debian", Release: "bookworm"},
		Layers:     layers,
	}
}

func fileContent(t *testing.T, r *recipe.Recipe, path string) string {
	t.Helper()
	for _, f := range r.Files {
		if f.Path == path {
			return *f.Content
		}
	}
	t.Fatalf("no file %s in %+v", path, r.Files)
	return ""
}

func scriptRuns(r *recipe.Recipe) []string {
	var out []string
	for _, s := range r.Scripts {
		out = append(out, s.Name+":"+s.Run)
	}
	return out
}

func TestComposeLaterLayerWins(t *testing.T) {
	c := testCatalog()
	ab, err := Compose(withLayers("alpha", "beta"), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileContent(t, ab, "/etc/shared"); got != "beta\n" {
		t.Errorf("/etc/shared = %q, want beta's", got)
	}
	if got := fileContent(t, ab, "/etc/alpha"); got != "alpha only\n" {
		t.Errorf("/etc/alpha = %q", got)
	}
	if ab.Hostname != "beta" || ab.Locale != "de_DE.UTF-8" || ab.Timezone != "Europe/Paris" {
		t.Errorf("scalars: %q %q %q", ab.Hostname, ab.Locale, ab.Timezone)
	}
	// The keyboard is one setting: beta's "fr" does not keep alpha's variant.
	if ab.Keyboard != (recipe.Keyboard{Layout: "fr"}) {
		t.Errorf("keyboard = %+v", ab.Keyboard)
	}
	if !slices.Equal(ab.Services.Enable, []string{"cron.service"}) || !slices.Equal(ab.Services.Disable, []string{"ssh.service"}) {
		t.Errorf("services = %+v", ab.Services)
	}
	if !slices.Equal(ab.Packages, []string{"curl", "htop", "vim"}) {
		t.Errorf("packages = %v", ab.Packages)
	}
	if !slices.Equal(ab.Kernel.Cmdline, []string{"quiet", "loglevel=3", "loglevel=7"}) {
		t.Errorf("cmdline = %v", ab.Kernel.Cmdline)
	}
	if got := scriptRuns(ab); !slices.Equal(got, []string{"alpha-only:true", "setup:echo beta"}) {
		t.Errorf("scripts = %v", got)
	}
	if !slices.Equal(ab.Layers, []string{"alpha", "beta"}) {
		t.Errorf("layers = %v", ab.Layers)
	}

	// The other order: alpha now wins everything they both set.
	ba, err := Compose(withLayers("beta", "alpha"), c)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileContent(t, ba, "/etc/shared"); got != "alpha\n" {
		t.Errorf("/etc/shared = %q, want alpha's", got)
	}
	if ba.Hostname != "alpha" || ba.Timezone != "Europe/Paris" || ba.Keyboard != (recipe.Keyboard{Layout: "de", Variant: "nodeadkeys"}) {
		t.Errorf("scalars: %q %q %+v", ba.Hostname, ba.Timezone, ba.Keyboard)
	}
	if !slices.Equal(ba.Services.Enable, []string{"cron.service", "ssh.service"}) || len(ba.Services.Disable) != 0 {
		t.Errorf("services = %+v", ba.Services)
	}
	if !slices.Equal(ba.Kernel.Cmdline, []string{"loglevel=7", "quiet", "loglevel=3"}) {
		t.Errorf("cmdline = %v", ba.Kernel.Cmdline)
	}
	if got := scriptRuns(ba); !slices.Equal(got, []string{"setup:echo alpha", "alpha-only:true"}) {
		t.Errorf("scripts = %v", got)
	}
	// Layer order is part of the recipe's meaning, so of its hash.
	if withLayers("alpha", "beta").Hash() == withLayers("beta", "alpha").Hash() {
		t.Error("layer order does not change the recipe hash")
	}
	if ab.Hash() == ba.Hash() {
		t.Error("different effective recipes hash the same")
	}
}

func TestComposeRecipeWins(t *testing.T) {
	r := withLayers("alpha", "beta")
	r.Packages = []string{"git"}
	r.Files = []recipe.File{{Path: "/etc/shared", Content: strp("recipe\n")}}
	r.Services = recipe.Services{Enable: []string{"ssh"}, Disable: []string{"cron"}}
	r.Hostname = "mine"
	r.Keyboard = recipe.Keyboard{Layout: "us"}
	r.Kernel.Cmdline = []string{"loglevel=3"}
	r.Scripts = []recipe.Script{{Name: "setup", Run: "echo recipe"}, {Name: "last", Run: "true"}}
	before := r.Clone()

	eff, err := Compose(r, testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if got := fileContent(t, eff, "/etc/shared"); got != "recipe\n" {
		t.Errorf("/etc/shared = %q", got)
	}
	if eff.Hostname != "mine" || eff.Keyboard.Layout != "us" || eff.Keyboard.Variant != "" || eff.Timezone != "Europe/Paris" {
		t.Errorf("scalars: %q %+v %q", eff.Hostname, eff.Keyboard, eff.Timezone)
	}
	if !slices.Equal(eff.Services.Enable, []string{"ssh.service"}) || !slices.Equal(eff.Services.Disable, []string{"cron.service"}) {
		t.Errorf("services = %+v", eff.Services)
	}
	if !slices.Equal(eff.Packages, []string{"curl", "git", "htop", "vim"}) {
		t.Errorf("packages = %v", eff.Packages)
	}
	// The recipe's loglevel=3 comes after beta's loglevel=7, so the recipe's value rules.
	if !slices.Equal(eff.Kernel.Cmdline, []string{"quiet", "loglevel=7", "loglevel=3"}) {
		t.Errorf("cmdline = %v", eff.Kernel.Cmdline)
	}
	if got := scriptRuns(eff); !slices.Equal(got, []string{"alpha-only:true", "setup:echo recipe", "last:true"}) {
		t.Errorf("scripts = %v", got)
	}
	// Defaults are filled: the effective recipe is normalised.
	if eff.Locale != "de_DE.UTF-8" || eff.Image.Compression != "zstd" || len(eff.Boot) != 2 {
		t.Errorf("not normalised: %+v", eff)
	}
	// Neither the recipe nor the catalog was touched.
	if r.Hash() != before.Hash() || r.Hostname != "mine" || len(r.Packages) != 1 {
		t.Error("Compose modified its input")
	}
	eff.Files[0].Content = strp("changed")
	if got := *testCatalog()["alpha"].Files[0].Content; got != "alpha\n" {
		t.Errorf("catalog changed: %q", got)
	}
}

func TestComposeNoLayers(t *testing.T) {
	r := withLayers()
	r.Hostname = "solo"
	eff, err := Compose(r, testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	n := r.Clone()
	n.Normalize()
	if eff.Hash() != n.Hash() {
		t.Error("composing no layers changed the recipe")
	}
}

func TestComposeErrors(t *testing.T) {
	c := testCatalog()
	for _, tc := range []struct {
		name     string
		recipe   *recipe.Recipe
		sentinel error
		want     []recipe.FieldError // Path and Code compared
	}{
		{"unknown layers, all reported", withLayers("alpha", "nope", "beta", "missing"), ErrUnknownLayer,
			[]recipe.FieldError{{Path: "layers[1]", Code: CodeUnknownLayer}, {Path: "layers[3]", Code: CodeUnknownLayer}}},
		{"requirement by capability", withLayers("theme"), ErrUnmetRequirement,
			[]recipe.FieldError{{Path: "layers[0]", Code: CodeUnmetRequirement}}},
		{"requirement by id", withLayers("tools"), ErrUnmetRequirement,
			[]recipe.FieldError{{Path: "layers[0]", Code: CodeUnmetRequirement}}},
		{"conflict reported once", withLayers("alpha", "gnome", "kde"), ErrLayerConflict,
			[]recipe.FieldError{{Path: "layers[1]", Code: CodeLayerConflict}}},
		{"recipe's own problems too", func() *recipe.Recipe {
			r := withLayers("nope")
			r.Hostname = "-bad"
			return r
		}(), ErrUnknownLayer, []recipe.FieldError{{Path: "hostname", Code: recipe.CodeInvalid}, {Path: "layers[0]", Code: CodeUnknownLayer}}},
		{"layer content invalid", withLayers("bad"), recipe.ErrInvalid,
			[]recipe.FieldError{{Path: "files[0].path", Code: recipe.CodeInvalid}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compose(tc.recipe, c)
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.sentinel) || !errors.Is(err, recipe.ErrInvalid) {
				t.Errorf("errors.Is(%v) failed for %v", tc.sentinel, err)
			}
			var ve *recipe.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("not a ValidationError: %v", err)
			}
			if len(ve.Errors) != len(tc.want) {
				t.Fatalf("got %v, want %v", ve.Errors, tc.want)
			}
			for i, w := range tc.want {
				if ve.Errors[i].Path != w.Path || ve.Errors[i].Code != w.Code || ve.Errors[i].Message == "" {
					t.Errorf("error %d = %+v, want %s %s", i, ve.Errors[i], w.Path, w.Code)
				}
			}
		})
	}
	// Satisfied requirements and compatible choices compose.
	if _, err := Compose(withLayers("gnome", "theme", "alpha", "tools"), c); err != nil {
		t.Errorf("valid composition refused: %v", err)
	}
	// A missing requirement that the catalog has is suggested by name.
	_, err := Compose(withLayers("tools"), c)
	if err == nil || !strings.Contains(err.Error(), `add layer "alpha"`) {
		t.Errorf("no suggestion: %v", err)
	}
	if _, err := Compose(nil, c); !errors.Is(err, recipe.ErrInvalid) {
		t.Errorf("nil recipe: %v", err)
	}
}

func TestComposeUsersAndExclusiveCapabilities(t *testing.T) {
	c, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	r := withLayers("admin-user", "ssh-server")
	eff, err := Compose(r, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(eff.Users) != 1 || eff.Users[0].Name != "admin" || !eff.Users[0].Sudo || eff.Users[0].PasswordHash != "" {
		t.Fatalf("users = %+v", eff.Users)
	}
	// The recipe's user of the same name replaces the layer's.
	r.Users = []recipe.User{{Name: "admin", SSHKeys: []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDKUyaepiw1RF6aI3s6VV4TTsCcb4otU+5VuhcGeOCRs a@b"}}}
	eff, err = Compose(r, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(eff.Users) != 1 || eff.Users[0].Sudo || len(eff.Users[0].SSHKeys) != 1 {
		t.Fatalf("users = %+v", eff.Users)
	}
	// Two display managers: an exclusive capability with two implementations.
	_, err = Compose(withLayers("gnome", "xfce"), c)
	if !errors.Is(err, ErrLayerConflict) || !strings.Contains(err.Error(), "display-manager") {
		t.Errorf("gnome+xfce: %v", err)
	}
	// The same implementation (LightDM, PulseAudio) is no conflict.
	if _, err := Compose(withLayers("xfce", "i3"), c); err != nil {
		t.Errorf("xfce+i3: %v", err)
	}
}
