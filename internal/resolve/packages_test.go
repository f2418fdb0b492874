package resolve

import (
	"slices"
	"strings"
	"testing"

	"debate/internal/catalog"
)

// TestCatalogPackagesExist: every package a layer names is a real package of Debian
// bookworm main for amd64.
func TestCatalogPackagesExist(t *testing.T) {
	c := realChecker(t)
	n := 0
	for _, l := range c.cat.Layers() {
		for _, p := range l.Packages {
			n++
			if !c.idx.IsReal(p) {
				t.Errorf("layer %s: package %s is not in Debian bookworm main amd64 (suggestion: %q)", l.ID, p, c.idx.Suggest(p))
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d packages in the catalog", n)
	}
}

// TestCatalogPackageLevel: every layer alone, and every platform with every other layer
// that the layer level accepts, installs at the package level: the layer level declares
// every conflict the packages have.
func TestCatalogPackageLevel(t *testing.T) {
	c := realChecker(t)
	var sets [][]string
	for _, l := range c.cat.Layers() {
		sets = append(sets, []string{l.ID})
		if l.Kind != catalog.KindPlatform {
			continue
		}
		for _, m := range c.cat.Layers() {
			if m.ID != l.ID {
				sets = append(sets, []string{l.ID, m.ID})
			}
		}
	}
	checked := 0
	for _, s := range sets {
		r := withLayers(s...)
		if len(c.layerFindings(r.Layers)) > 0 {
			continue
		}
		checked++
		for _, f := range c.packageFindings(r) {
			t.Errorf("%v: accepted at the layer level, objected to at the package level: %s %v", s, f.Reason, f.Chain)
		}
	}
	if checked < 100 {
		t.Errorf("only %d selections checked", checked)
	}
}

func TestPackageObjections(t *testing.T) {
	c := realChecker(t)
	find := func(rep *Report, code string) Objection {
		t.Helper()
		for _, o := range rep.Objections {
			if o.Code == code {
				return o
			}
		}
		t.Fatalf("no %s objection in:\n%s", code, rep)
		return Objection{}
	}

	// A package that cannot live with the base system's init.
	r := withLayers()
	r.Packages = []string{"sysvinit-core", "nano"}
	rep := mustCheck(t, c, r, nil)
	o := find(rep, ObjUninstallable)
	if !slices.Equal(o.Packages, []string{"sysvinit-core"}) || !strings.Contains(o.Reason, "systemd-sysv, which the base system needs") || len(o.Chain) == 0 {
		t.Errorf("sysvinit-core: %+v", o)
	}
	if !hasResolution(o, Concede, Change{Op: OpRemovePackage, Package: "sysvinit-core"}) {
		t.Errorf("resolutions: %+v", o.Resolutions)
	}
	assertResolutionsHelp(t, c, r, rep)

	// Two packages that conflict, with the chain that breaks; a misspelt package; a
	// virtual package with many providers; the last change offered for withdrawal.
	r.Packages = []string{"pipewire-audio", "pulseaudio", "nanoo", "mail-transport-agent", "vim"}
	rep = mustCheck(t, c, r, &Change{Op: OpAddPackage, Package: "pulseaudio"})
	if len(rep.Objections) != 3 || !rep.PackagesChecked {
		t.Fatalf("want 3 objections:\n%s", rep)
	}
	o = find(rep, ObjPackageConflict)
	if !slices.Equal(o.Packages, []string{"pipewire-audio", "pulseaudio"}) || !strings.Contains(strings.Join(o.Chain, "\n"), "conflicts with pulseaudio") {
		t.Errorf("conflict: %+v", o)
	}
	if o.Resolutions[0].Kind != Withdraw || !hasResolution(o, Withdraw, Change{Op: OpRemovePackage, Package: "pulseaudio"}) {
		t.Errorf("withdraw: %+v", o.Resolutions)
	}
	o = find(rep, ObjUnknownPackage)
	if !strings.Contains(o.Reason, "nanoo") || !strings.Contains(o.Reason, "does not exist in Debian bookworm") ||
		!hasResolution(o, Rebut, Change{Op: OpRemovePackage, Package: "nanoo"}, Change{Op: OpAddPackage, Package: "nano"}) {
		t.Errorf("unknown: %+v", o)
	}
	o = find(rep, ObjVirtualPackage)
	if !strings.Contains(o.Reason, "exim4-daemon-light") || len(o.Resolutions) < 2 {
		t.Errorf("virtual: %+v", o)
	}
	assertResolutionsHelp(t, c, r, rep)

	// Layers whose packages conflict are named, at both levels.
	r = withLayers("gnome", "xfce")
	rep = mustCheck(t, c, r, nil)
	o = find(rep, ObjPackageConflict)
	if !slices.Contains(o.Layers, "gnome") || !slices.Contains(o.Layers, "xfce") || !strings.Contains(o.Reason, "from layer") {
		t.Errorf("layers' packages: %+v", o)
	}
	assertResolutionsHelp(t, c, r, rep)

	// The catalog's typical recipe is sustained at both levels.
	r = withLayers("debian-bookworm", "xfce", "theme-arc-dark", "browser", "office", "developer-tools", "locale-en-us", "admin-user", "ssh-server", "firewall-nftables")
	r.Packages = typicalRecipe()
	if rep := mustCheck(t, c, r, nil); !rep.Sustained {
		t.Errorf("typical recipe:\n%s", rep)
	}
}
