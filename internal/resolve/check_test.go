package resolve

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"debate/internal/catalog"
	"debate/internal/recipe"
)

func layerChecker(t testing.TB) *Checker {
	t.Helper()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	return NewChecker(cat, nil, "")
}

func codes(rep *Report) []string {
	var out []string
	for _, o := range rep.Objections {
		out = append(out, o.Code)
	}
	return out
}

func hasResolution(o Objection, kind string, changes ...Change) bool {
	for _, r := range o.Resolutions {
		if r.Kind != kind || len(r.Changes) != len(changes) {
			continue
		}
		same := true
		for i := range changes {
			if r.Changes[i].Op != changes[i].Op || r.Changes[i].Layer != changes[i].Layer || r.Changes[i].Package != changes[i].Package {
				same = false
			}
		}
		if same {
			return true
		}
	}
	return false
}

func mustCheck(t *testing.T, c *Checker, r *recipe.Recipe, last *Change) *Report {
	t.Helper()
	rep, err := c.Check(r, last)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestLayerObjections(t *testing.T) {
	c := layerChecker(t)

	rep := mustCheck(t, c, withLayers("debian-bookworm", "xfce", "i3", "browser", "ssh-server", "firewall-nftables"), nil)
	if !rep.Sustained || len(rep.Objections) != 0 || rep.PackagesChecked {
		t.Fatalf("clean recipe: %s", rep)
	}

	// Two desktops with different display managers and sound servers.
	rep = mustCheck(t, c, withLayers("gnome", "xfce"), nil)
	if rep.Sustained || !slices.Equal(codes(rep), []string{ObjLayerConflict}) {
		t.Fatalf("gnome+xfce: %s", rep)
	}
	o := rep.Objections[0]
	if !slices.Equal(o.Layers, []string{"gnome", "xfce"}) || !strings.Contains(o.Reason, "GNOME and Xfce both provide a display manager (gdm3 and lightdm)") {
		t.Errorf("objection: %+v", o)
	}
	if !hasResolution(o, Concede, Change{Op: OpRemoveLayer, Layer: "gnome"}) || !hasResolution(o, Concede, Change{Op: OpRemoveLayer, Layer: "xfce"}) {
		t.Errorf("no concede: %+v", o.Resolutions)
	}
	// i3 shares LightDM and PulseAudio with Xfce: a rebut swaps GNOME for it.
	if !hasResolution(o, Rebut, Change{Op: OpRemoveLayer, Layer: "gnome"}, Change{Op: OpAddLayer, Layer: "i3"}) {
		t.Errorf("no rebut to i3: %+v", o.Resolutions)
	}

	// A declared conflict with a capability: ufw refuses SSH; nftables lets it in.
	rep = mustCheck(t, c, withLayers("ssh-server", "firewall-ufw"), nil)
	if !slices.Equal(codes(rep), []string{ObjLayerConflict}) ||
		!hasResolution(rep.Objections[0], Rebut, Change{Op: OpRemoveLayer, Layer: "firewall-ufw"}, Change{Op: OpAddLayer, Layer: "firewall-nftables"}) {
		t.Errorf("ufw+ssh: %s", rep)
	}

	// A requirement nothing listed meets: amend by adding a provider.
	rep = mustCheck(t, c, withLayers("gaming"), nil)
	if !slices.Equal(codes(rep), []string{ObjUnmetRequirement}) || !hasResolution(rep.Objections[0], Amend, Change{Op: OpAddLayer, Layer: "sway"}) {
		t.Errorf("gaming alone: %s", rep)
	}

	// A requirement that cannot be met with what is listed: the SAT core names why.
	rep = mustCheck(t, c, withLayers("kde-plasma", "gnome-extras"), nil)
	if !slices.Equal(codes(rep), []string{ObjUnmetRequirement}) {
		t.Fatalf("gnome-extras+kde: %s", rep)
	}
	o = rep.Objections[0]
	if !strings.Contains(o.Reason, "can be used together with KDE Plasma") || !slices.Equal(o.Layers, []string{"gnome-extras", "kde-plasma"}) {
		t.Errorf("explanation: %+v", o)
	}
	if !hasResolution(o, Rebut, Change{Op: OpRemoveLayer, Layer: "kde-plasma"}, Change{Op: OpAddLayer, Layer: "gnome"}) || !hasResolution(o, Concede, Change{Op: OpRemoveLayer, Layer: "gnome-extras"}) {
		t.Errorf("resolutions: %+v", o.Resolutions)
	}

	// Unknown layer with a spelling suggestion.
	rep = mustCheck(t, c, withLayers("gnmoe"), nil)
	if !slices.Equal(codes(rep), []string{ObjUnknownLayer}) || !hasResolution(rep.Objections[0], Rebut, Change{Op: OpRemoveLayer, Layer: "gnmoe"}, Change{Op: OpAddLayer, Layer: "gnome"}) {
		t.Errorf("unknown: %s", rep)
	}

	// Withdraw: the client says it just added xfce.
	rep = mustCheck(t, c, withLayers("gnome", "xfce"), &Change{Op: OpAddLayer, Layer: "xfce"})
	if !hasResolution(rep.Objections[0], Withdraw, Change{Op: OpRemoveLayer, Layer: "xfce"}) || rep.Objections[0].Resolutions[0].Kind != Withdraw {
		t.Errorf("withdraw: %+v", rep.Objections[0].Resolutions)
	}
	// ... or that it just removed the desktop that gaming needed.
	at := 0
	rep = mustCheck(t, c, withLayers("gaming"), &Change{Op: OpRemoveLayer, Layer: "xfce", At: &at})
	if !hasResolution(rep.Objections[0], Withdraw, Change{Op: OpAddLayer, Layer: "xfce"}) {
		t.Errorf("withdraw of a removal: %+v", rep.Objections[0].Resolutions)
	}
	// A last change unrelated to an objection offers no withdraw.
	rep = mustCheck(t, c, withLayers("gnome", "xfce", "browser"), &Change{Op: OpAddLayer, Layer: "browser"})
	for _, r := range rep.Objections[0].Resolutions {
		if r.Kind == Withdraw {
			t.Errorf("unrelated withdraw offered: %+v", r)
		}
	}
	if _, err := c.Check(withLayers("gnome"), &Change{Op: "explode"}); !errors.Is(err, ErrBadChange) {
		t.Errorf("bad last change: %v", err)
	}
	bad := withLayers("gnome")
	bad.Hostname = "-x"
	if _, err := c.Check(bad, nil); !errors.Is(err, recipe.ErrInvalid) {
		t.Errorf("invalid recipe: %v", err)
	}
}

// assertResolutionsHelp applies every offered resolution and wants strictly fewer
// objections (or none).
func assertResolutionsHelp(t *testing.T, c *Checker, r *recipe.Recipe, rep *Report) {
	t.Helper()
	for _, o := range rep.Objections {
		for _, res := range o.Resolutions {
			next, err := Apply(r, res.Changes)
			if err != nil {
				t.Errorf("%v: resolution %q does not apply: %v", r.Layers, res.Summary, err)
				continue
			}
			after, err := c.Check(next, nil)
			if err != nil {
				t.Errorf("%v: %q gives an invalid recipe: %v", r.Layers, res.Summary, err)
				continue
			}
			if !after.Sustained && len(after.Objections) >= len(rep.Objections) {
				t.Errorf("%v + %q: %d objections, before %d", r.Layers, res.Summary, len(after.Objections), len(rep.Objections))
			}
		}
	}
}

// TestCatalogLayerLevel covers the whole catalog at the layer level: every layer alone,
// every pair, and every triple of platforms; each objection has a resolution and every
// resolution helps.
func TestCatalogLayerLevel(t *testing.T) {
	c := layerChecker(t)
	ids := c.cat.IDs()
	var sets [][]string
	for i, a := range ids {
		sets = append(sets, []string{a})
		for _, b := range ids[i+1:] {
			sets = append(sets, []string{a, b})
		}
	}
	var platforms []string
	for _, l := range c.cat.Layers() {
		if l.Kind == catalog.KindPlatform {
			platforms = append(platforms, l.ID)
		}
	}
	for i := range platforms {
		for j := i + 1; j < len(platforms); j++ {
			for k := j + 1; k < len(platforms); k++ {
				sets = append(sets, []string{platforms[i], platforms[j], platforms[k]})
			}
		}
	}
	objections := 0
	for _, s := range sets {
		r := withLayers(s...)
		rep := mustCheck(t, c, r, &Change{Op: OpAddLayer, Layer: s[len(s)-1]})
		for _, o := range rep.Objections {
			objections++
			if len(o.Resolutions) == 0 {
				t.Errorf("%v: objection without resolution: %s", s, o.Reason)
			}
			if o.Reason == "" || len(o.Layers) == 0 {
				t.Errorf("%v: objection without reason or layers: %+v", s, o)
			}
		}
		assertResolutionsHelp(t, c, r, rep)
	}
	if objections < 50 {
		t.Errorf("only %d objections over %d selections: the test is not exercising conflicts", objections, len(sets))
	}
	// Every layer alone is sustained or only lacks a requirement, which amend fixes.
	for _, id := range ids {
		rep := mustCheck(t, c, withLayers(id), nil)
		for _, o := range rep.Objections {
			if o.Code != ObjUnmetRequirement || o.Resolutions[0].Kind != Amend {
				t.Errorf("%s alone: %+v", id, o)
			}
		}
	}
}

func TestApplyAndInverse(t *testing.T) {
	r := withLayers("a1", "b1")
	r.Packages = []string{"vim"}
	one := 1
	out, err := Apply(r, []Change{{Op: OpAddLayer, Layer: "c1", At: &one}, {Op: OpRemovePackage, Package: "vim"}, {Op: OpAddPackage, Package: "nano"}})
	if err != nil || !slices.Equal(out.Layers, []string{"a1", "c1", "b1"}) || !slices.Equal(out.Packages, []string{"nano"}) || !slices.Equal(r.Layers, []string{"a1", "b1"}) {
		t.Fatalf("Apply = %+v, %v (input %v)", out, err, r.Layers)
	}
	for _, bad := range [][]Change{{{Op: OpAddLayer, Layer: "a1"}}, {{Op: OpRemoveLayer, Layer: "zz"}}, {{Op: OpRemovePackage, Package: "git"}}, {{Op: "x"}}, {{Op: OpAddLayer, Layer: "d1", At: &[]int{9}[0]}}} {
		if _, err := Apply(r, bad); !errors.Is(err, ErrBadChange) {
			t.Errorf("Apply(%+v) = %v", bad, err)
		}
	}
	for _, ch := range []Change{{Op: OpAddLayer, Layer: "x1"}, {Op: OpRemoveLayer, Layer: "x1", At: &one}, {Op: OpAddPackage, Package: "vim"}, {Op: OpRemovePackage, Package: "vim"}} {
		inv, err := Inverse(ch)
		if err != nil {
			t.Fatal(err)
		}
		back, _ := Inverse(inv)
		if back.Op != ch.Op || back.Layer != ch.Layer || back.Package != ch.Package {
			t.Errorf("Inverse twice of %+v = %+v", ch, back)
		}
	}
	for _, bad := range []Change{{Op: OpAddLayer}, {Op: OpAddPackage, Package: "Vim"}, {Op: OpAddPackage, Package: "vim", Layer: "x1"}, {Op: "?"}} {
		if ValidateChange(bad) == nil {
			t.Errorf("ValidateChange(%+v) accepted", bad)
		}
	}
}
