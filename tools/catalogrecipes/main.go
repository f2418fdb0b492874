// Command catalogrecipes writes one recipe per platform of the layer catalog (the
// platform with the catalog's typical companions), composed into its effective recipe, so
// that `debate build` can deliver each: make check-catalog builds them all.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"debate/internal/catalog"
	"debate/internal/recipe"
	"debate/internal/resolve"
)

func main() {
	out := flag.String("o", "out/catalog", "output `directory` for PLATFORM.json recipes")
	flag.Parse()
	cat, err := catalog.Default()
	if err != nil {
		fail(err)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fail(err)
	}
	for _, l := range cat.Layers() {
		if l.Kind != catalog.KindPlatform {
			continue
		}
		r := &recipe.Recipe{APIVersion: recipe.APIVersion, Name: "catalog-" + l.ID,
			Description: "The " + l.Title + " platform of the layer catalog with a browser, fonts and an admin user.",
			Base:        recipe.Base{Distribution: "debian", Release: "bookworm"},
			Layers:      []string{"debian-bookworm", l.ID, "fonts-extra", "browser", "locale-en-us", "admin-user"},
			Image:       recipe.Image{Compression: "zstd", CompressionLevel: 3},
		}
		rep, err := resolve.NewChecker(cat, nil, "").Check(r, nil)
		if err != nil || !rep.Sustained {
			fail(fmt.Errorf("%s: %v\n%s", l.ID, err, rep))
		}
		eff, err := resolve.Compose(r, cat)
		if err != nil {
			fail(err)
		}
		// The builder does not compose layers itself (yet): hand it the effective
		// recipe with nothing left to compose.
		eff.Layers = []string{}
		data, err := eff.CanonicalIndent()
		if err != nil {
			fail(err)
		}
		p := filepath.Join(*out, l.ID+".json")
		if err := os.WriteFile(p, append(data, '\n'), 0o644); err != nil {
			fail(err)
		}
		fmt.Println(p)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "catalogrecipes:", err)
	os.Exit(1)
}
