package catalog

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestDefaultCatalog(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, l := range c.Layers() {
		count[l.Kind]++
	}
	// The minimum catalog.
	for kind, min := range map[string]int{KindOpeningStatement: 1, KindPlatform: 4, KindRhetoric: 3, KindTalkingPoints: 8, KindClosingArgument: 4} {
		if count[kind] < min {
			t.Errorf("%d %s layers, want at least %d", count[kind], kind, min)
		}
	}
	for _, id := range []string{"debian-bookworm", "gnome", "kde-plasma", "xfce", "sway", "i3", "browser", "office", "developer-tools", "media", "gaming", "locale-en-us", "admin-user", "ssh-server", "firewall-nftables"} {
		if _, ok := c.Layer(id); !ok {
			t.Errorf("layer %s missing", id)
		}
	}
	// Layers come back in kind order, and copies do not alias the catalog.
	ls := c.Layers()
	for i := 1; i < len(ls); i++ {
		if slices.Index(Kinds(), ls[i-1].Kind) > slices.Index(Kinds(), ls[i].Kind) {
			t.Errorf("%s before %s", ls[i-1].ID, ls[i].ID)
		}
	}
	g, _ := c.Layer("gnome")
	g.Packages[0] = "changed"
	if g2, _ := c.Layer("gnome"); g2.Packages[0] == "changed" {
		t.Error("Layer returns shared memory")
	}
	if impl, ok := g.Implementation("display-manager"); !ok || impl != "gdm3" || !g.Is("desktop") || !g.Is("gnome") || g.Is("firewall") {
		t.Errorf("capabilities of gnome: %v", g.Provides)
	}
	if !c.Exclusive("display-manager") || c.Exclusive("desktop") {
		t.Error("exclusive capabilities")
	}
	if ci, ok := c.CapabilityInfo("display-manager"); !ok || ci.Noun != "a display manager" {
		t.Errorf("capability info %+v", ci)
	}
}

func TestSearch(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ls []Layer) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.ID)
		}
		return out
	}
	for _, tc := range []struct {
		q    Query
		want []string
	}{
		{Query{Kind: KindPlatform, Tags: []string{"tiling"}}, []string{"i3", "sway"}},
		{Query{Text: "LightDM"}, []string{"i3", "xfce"}},
		{Query{Text: "firefox-esr"}, []string{"browser"}},                     // by package
		{Query{Text: "display-manager=sddm"}, []string{"kde-plasma", "lxqt"}}, // by capability
		{Query{Text: "firewall ssh", Kind: KindClosingArgument}, []string{"firewall-nftables", "firewall-ufw"}},
		{Query{Text: "no such thing"}, nil},
	} {
		got, err := c.Search(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids(got), tc.want) {
			t.Errorf("Search(%+v) = %v, want %v", tc.q, ids(got), tc.want)
		}
	}
	all, _ := c.Search(Query{})
	if len(all) != len(c.Layers()) {
		t.Errorf("empty query: %d of %d", len(all), len(c.Layers()))
	}
	for _, q := range []Query{{Kind: "desktop"}, {Tags: []string{"Bad Tag"}}, {Text: strings.Repeat("x", 201)}} {
		if _, err := c.Search(q); !errors.Is(err, ErrBadQuery) {
			t.Errorf("Search(%+v) = %v", q, err)
		}
	}
}

func TestLoadRejectsBadLayers(t *testing.T) {
	caps := "- {name: desktop, noun: a desktop}\n- {name: dm, noun: a display manager, exclusive: true}\n"
	good := "id: ok\ntitle: OK\ndescription: fine\nkind: platform\nprovides: [desktop, dm=x]\n"
	for name, tc := range map[string]struct {
		file, content, want string
	}{
		"unknown field":    {"bad.yaml", "id: bad\ntitle: B\ndescription: d\nkind: platform\npackage: [vim]\n", `unknown field "package"`},
		"id vs file name":  {"bad.yaml", "id: other\ntitle: B\ndescription: d\nkind: platform\n", "must match the file name"},
		"kind":             {"bad.yaml", "id: bad\ntitle: B\ndescription: d\nkind: desktop\n", `kind "desktop"`},
		"no title":         {"bad.yaml", "id: bad\ndescription: d\nkind: platform\n", "title and description"},
		"unknown require":  {"bad.yaml", "id: bad\ntitle: B\ndescription: d\nkind: platform\nrequires: [nothing]\n", `requires "nothing"`},
		"unknown conflict": {"bad.yaml", "id: bad\ntitle: B\ndescription: d\nkind: platform\nconflicts: [bad]\n", `conflicts "bad"`},
		"unknown provide":  {"bad.yaml", "id: bad\ntitle: B\ndescription: d\nkind: platform\nprovides: [sound]\n", `provides "sound"`},
		"bad package":      {"bad.yaml", "id: bad\ntitle: B\ndescription: d\nkind: platform\npackages: [Vim]\n", "packages[0]"},
		"bad file":         {"bad.yaml", "id: bad\ntitle: B\ndescription: d\nkind: platform\nfiles: [{path: /proc/x, content: ''}]\n", "files[0].path"},
		"bad tag":          {"bad.yaml", "id: bad\ntitle: B\ndescription: d\nkind: platform\ntags: [Big]\n", `tag "Big"`},
	} {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{
				"capabilities.yaml": {Data: []byte(caps)},
				"layers/ok.yaml":    {Data: []byte(good)},
				"layers/" + tc.file: {Data: []byte(tc.content)},
			}
			_, err := Load(fsys)
			if !errors.Is(err, ErrInvalidLayer) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Load = %v, want an ErrInvalidLayer mentioning %q", err, tc.want)
			}
		})
	}
	c, err := Load(fstest.MapFS{"capabilities.yaml": {Data: []byte(caps)}, "layers/ok.yaml": {Data: []byte(good)}})
	if err != nil || len(c.Layers()) != 1 {
		t.Fatalf("good catalog: %v", err)
	}
}
