package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

	"debate/internal/catalog"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runLayers lists or searches the layer catalog: exit 0 with matches, 1 with none, 2 for a
// usage error.
func runLayers(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("layers", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kind := fs.String("kind", "", "only layers of this `kind`: "+strings.Join(catalog.Kinds(), ", "))
	var tags stringList
	fs.Var(&tags, "tag", "only layers with this `tag` (repeat for several: all must match)")
	asJSON := fs.Bool("json", false, "print the layers as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: debate layers [SEARCH WORDS] [--kind KIND] [--tag TAG]... [--json]\n\nList the layer catalog, or the layers whose id, title, description, tags,\ncapabilities or packages contain every search word.\n\nflags:")
		fs.PrintDefaults()
	}
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return 2
	}
	cat, err := catalog.Default()
	if err != nil {
		fmt.Fprintf(stderr, "debate layers: %v\n", err)
		return 2
	}
	ls, err := cat.Search(catalog.Query{Text: strings.Join(rest, " "), Kind: *kind, Tags: tags})
	if err != nil {
		fmt.Fprintf(stderr, "debate layers: %v\n", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(ls); err != nil {
			fmt.Fprintf(stderr, "debate layers: %v\n", err)
			return 2
		}
	} else {
		last := ""
		for _, l := range ls {
			if l.Kind != last {
				if last != "" {
					fmt.Fprintln(stdout)
				}
				fmt.Fprintf(stdout, "%s:\n", l.Kind)
				last = l.Kind
			}
			fmt.Fprintf(stdout, "  %-24s %s\n", l.ID, l.Title)
			var facts []string
			if len(l.Provides) > 0 {
				facts = append(facts, "provides "+strings.Join(l.Provides, ", "))
			}
			if len(l.Requires) > 0 {
				facts = append(facts, "requires "+strings.Join(l.Requires, ", "))
			}
			if len(l.Conflicts) > 0 {
				facts = append(facts, "conflicts with "+strings.Join(l.Conflicts, ", "))
			}
			if len(facts) > 0 {
				fmt.Fprintf(stdout, "  %-24s %s\n", "", strings.Join(facts, "; "))
			}
		}
	}
	if len(ls) == 0 {
		fmt.Fprintln(stderr, "no layer matches")
		return 1
	}
	return 0
}
