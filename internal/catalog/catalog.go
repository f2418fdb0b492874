// Package catalog holds the layer catalog: reusable parts of a recipe, one data file per
// layer embedded in the binary, with lookup and search. Composing layers into a recipe and
// judging a selection of them is the resolve package's work.
package catalog

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"debate/internal/recipe"
)

// Layer kinds, from the bottom of an image to its top.
const (
	KindOpeningStatement = "opening-statement" // the base system
	KindPlatform         = "platform"          // a desktop environment or window manager
	KindRhetoric         = "rhetoric"          // look and feel: themes, fonts, icons
	KindTalkingPoints    = "talking-points"    // application bundles
	KindClosingArgument  = "closing-argument"  // system settings: locale, users, ssh, firewall
)

// Kinds lists the layer kinds in order.
func Kinds() []string {
	return []string{KindOpeningStatement, KindPlatform, KindRhetoric, KindTalkingPoints, KindClosingArgument}
}

// Layer is a reusable part of a recipe. Its fields mean what the recipe fields of the same
// name mean; empty means "no opinion".
type Layer struct {
	ID          string   `json:"id"`
	Title       string   `json:"title"`
	Description string   `json:"description"`
	Kind        string   `json:"kind"`
	Tags        []string `json:"tags,omitempty"`

	Packages      []string         `json:"packages,omitempty"`
	Files         []recipe.File    `json:"files,omitempty"`
	Services      recipe.Services  `json:"services"`
	Users         []recipe.User    `json:"users,omitempty"`
	Hostname      string           `json:"hostname,omitempty"`
	Locale        string           `json:"locale,omitempty"`
	Timezone      string           `json:"timezone,omitempty"`
	Keyboard      *recipe.Keyboard `json:"keyboard,omitempty"`
	KernelCmdline []string         `json:"kernelCmdline,omitempty"`
	Scripts       []recipe.Script  `json:"scripts,omitempty"`

	// Requires names layers (by id or by a capability they provide) that must also be
	// listed.
	Requires []string `json:"requires,omitempty"`
	// Conflicts names layers (by id or by a capability they provide) that must not be
	// listed with this one.
	Conflicts []string `json:"conflicts,omitempty"`
	// Provides names capabilities this layer stands for besides its id, so that
	// alternatives can satisfy or exclude one another. An entry is "capability" or
	// "capability=implementation": two layers providing an exclusive capability conflict
	// unless both name the same implementation (Xfce and i3 can share LightDM).
	Provides []string `json:"provides,omitempty"`
}

// Capability splits a Provides entry into the capability and its implementation ("" when
// the entry names none).
func Capability(provide string) (name, implementation string) {
	name, implementation, _ = strings.Cut(provide, "=")
	return name, implementation
}

// Capabilities returns the capability names the layer provides (without implementations).
func (l Layer) Capabilities() []string {
	out := make([]string, 0, len(l.Provides))
	for _, p := range l.Provides {
		n, _ := Capability(p)
		out = append(out, n)
	}
	return out
}

// Implementation returns how the layer provides a capability: ok is false when it does not
// provide it, impl is "" when it names no implementation.
func (l Layer) Implementation(capability string) (impl string, ok bool) {
	for _, p := range l.Provides {
		if n, i := Capability(p); n == capability {
			return i, true
		}
	}
	return "", false
}

// Is reports whether the layer is name: its id or a capability it provides.
func (l Layer) Is(name string) bool {
	if l.ID == name {
		return true
	}
	_, ok := l.Implementation(name)
	return ok
}

// CapabilityInfo describes a capability layers may provide.
type CapabilityInfo struct {
	Name string `json:"name"`
	// Noun is how a sentence names it: "a display manager".
	Noun string `json:"noun"`
	// Exclusive capabilities admit one implementation per system.
	Exclusive   bool   `json:"exclusive"`
	Description string `json:"description"`
}

// Catalog is a validated, read-only set of layers and capabilities, safe for concurrent use.
type Catalog struct {
	layers       []Layer // kind order, then id
	byID         map[string]int
	capabilities map[string]CapabilityInfo
}

//go:embed layers/*.yaml capabilities.yaml
var embedded embed.FS

// Sentinel errors.
var (
	// ErrInvalidLayer is matched by every problem Load finds in the data files.
	ErrInvalidLayer = errors.New("invalid layer")
	// ErrNotFound is matched when a layer id is not in the catalog.
	ErrNotFound = errors.New("no such layer")
)

// Default returns the catalog shipped in the binary. It parses the embedded files on each
// call (a few milliseconds): callers that serve many requests keep the result.
func Default() (*Catalog, error) {
	return Load(embedded)
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)
var tagPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Load reads capabilities.yaml and layers/*.yaml (one layer per file, named ID.yaml) from
// fsys and checks them: unknown fields, ids, kinds, tags, references to layers and
// capabilities, and each layer's content against the recipe rules. Every problem is
// reported at once.
func Load(fsys fs.FS) (*Catalog, error) {
	c := &Catalog{byID: map[string]int{}, capabilities: map[string]CapabilityInfo{}}
	var problems []error
	bad := func(file, format string, args ...any) {
		problems = append(problems, fmt.Errorf("%w: %s: %s", ErrInvalidLayer, file, fmt.Sprintf(format, args...)))
	}

	data, err := fs.ReadFile(fsys, "capabilities.yaml")
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	var caps []CapabilityInfo
	if err := decodeStrict(data, &caps); err != nil {
		bad("capabilities.yaml", "%v", err)
	}
	for _, ci := range caps {
		if !idPattern.MatchString(ci.Name) || ci.Noun == "" {
			bad("capabilities.yaml", "capability %q needs a name matching %s and a noun", ci.Name, idPattern)
			continue
		}
		if _, dup := c.capabilities[ci.Name]; dup {
			bad("capabilities.yaml", "capability %q twice", ci.Name)
		}
		c.capabilities[ci.Name] = ci
	}

	files, err := fs.Glob(fsys, "layers/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	for _, f := range files {
		data, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, fmt.Errorf("catalog: %w", err)
		}
		var l Layer
		if err := decodeStrict(data, &l); err != nil {
			bad(f, "%v", err)
			continue
		}
		if want := strings.TrimSuffix(path.Base(f), ".yaml"); l.ID != want {
			bad(f, "id %q must match the file name %q", l.ID, want)
			continue
		}
		c.byID[l.ID] = -1
		c.layers = append(c.layers, l)
	}
	kindOrder := func(k string) int { return slices.Index(Kinds(), k) }
	slices.SortFunc(c.layers, func(a, b Layer) int {
		if d := kindOrder(a.Kind) - kindOrder(b.Kind); d != 0 {
			return d
		}
		return strings.Compare(a.ID, b.ID)
	})
	for i, l := range c.layers {
		c.byID[l.ID] = i
	}
	for _, l := range c.layers {
		for _, p := range c.check(l) {
			bad("layers/"+l.ID+".yaml", "%s", p)
		}
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return c, nil
}

// check returns what is wrong with one layer.
func (c *Catalog) check(l Layer) []string {
	var out []string
	if !idPattern.MatchString(l.ID) {
		out = append(out, fmt.Sprintf("id %q must match %s", l.ID, idPattern))
	}
	if strings.TrimSpace(l.Title) == "" || strings.TrimSpace(l.Description) == "" {
		out = append(out, "title and description are required")
	}
	if !slices.Contains(Kinds(), l.Kind) {
		out = append(out, fmt.Sprintf("kind %q is not one of %s", l.Kind, strings.Join(Kinds(), ", ")))
	}
	for _, t := range l.Tags {
		if !tagPattern.MatchString(t) {
			out = append(out, fmt.Sprintf("tag %q must match %s", t, tagPattern))
		}
	}
	known := func(name string) bool {
		_, isLayer := c.byID[name]
		_, isCap := c.capabilities[name]
		return isLayer || isCap
	}
	for _, p := range l.Provides {
		n, impl := Capability(p)
		if _, ok := c.capabilities[n]; !ok {
			out = append(out, fmt.Sprintf("provides %q: no such capability in capabilities.yaml", n))
		}
		if strings.Contains(p, "=") && !tagPattern.MatchString(impl) {
			out = append(out, fmt.Sprintf("provides %q: the implementation must match %s", p, tagPattern))
		}
	}
	for _, r := range l.Requires {
		if !known(r) || r == l.ID {
			out = append(out, fmt.Sprintf("requires %q: not another layer or a capability", r))
		}
	}
	for _, r := range l.Conflicts {
		if !known(r) || r == l.ID {
			out = append(out, fmt.Sprintf("conflicts %q: not another layer or a capability", r))
		}
	}
	// The layer's content must be valid recipe content: try it as a recipe of its own.
	r := AsRecipe(l)
	if err := recipe.Validate(r); err != nil {
		var ve *recipe.ValidationError
		if errors.As(err, &ve) {
			for _, fe := range ve.Errors {
				out = append(out, fe.String())
			}
		} else {
			out = append(out, err.Error())
		}
	}
	return out
}

// AsRecipe returns a recipe holding exactly the layer's content (no layers), the form in
// which the recipe rules check it.
func AsRecipe(l Layer) *recipe.Recipe {
	r := &recipe.Recipe{
		APIVersion: recipe.APIVersion, Name: "layer-" + l.ID,
		Base:     recipe.Base{Distribution: "debian", Release: "bookworm"},
		Packages: slices.Clone(l.Packages), Files: recipe.CloneFiles(l.Files),
		Users:    slices.Clone(l.Users),
		Hostname: l.Hostname, Locale: l.Locale, Timezone: l.Timezone,
		Services: recipe.Services{Enable: slices.Clone(l.Services.Enable), Disable: slices.Clone(l.Services.Disable)},
		Kernel:   recipe.Kernel{Cmdline: slices.Clone(l.KernelCmdline)},
		Scripts:  slices.Clone(l.Scripts),
	}
	if len(r.Name) > 63 {
		r.Name = r.Name[:63]
	}
	if l.Keyboard != nil {
		r.Keyboard = *l.Keyboard
	}
	return r
}

// decodeStrict reads YAML into v through JSON, so that the json field names of the recipe
// types apply and unknown fields are errors.
func decodeStrict(data []byte, v any) error {
	var doc any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("YAML: %w", err)
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("YAML to JSON: %w", err)
	}
	jd := json.NewDecoder(bytes.NewReader(j))
	jd.DisallowUnknownFields()
	if err := jd.Decode(v); err != nil {
		return err
	}
	return nil
}

// Layer returns a copy of a layer by id.
func (c *Catalog) Layer(id string) (Layer, bool) {
	i, ok := c.byID[id]
	if !ok || i < 0 {
		return Layer{}, false
	}
	return clone(c.layers[i]), true
}

// Layers returns every layer in kind order, then by id.
func (c *Catalog) Layers() []Layer {
	out := make([]Layer, len(c.layers))
	for i, l := range c.layers {
		out[i] = clone(l)
	}
	return out
}

// IDs returns every layer id, in the order of Layers.
func (c *Catalog) IDs() []string {
	out := make([]string, len(c.layers))
	for i, l := range c.layers {
		out[i] = l.ID
	}
	return out
}

// CapabilityInfo describes a capability; ok is false for an unknown one.
func (c *Catalog) CapabilityInfo(name string) (CapabilityInfo, bool) {
	ci, ok := c.capabilities[name]
	return ci, ok
}

// Capabilities returns every capability, sorted by name.
func (c *Catalog) Capabilities() []CapabilityInfo {
	out := make([]CapabilityInfo, 0, len(c.capabilities))
	for _, ci := range c.capabilities {
		out = append(out, ci)
	}
	slices.SortFunc(out, func(a, b CapabilityInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Exclusive reports whether a capability admits only one implementation per system.
func (c *Catalog) Exclusive(name string) bool { return c.capabilities[name].Exclusive }

// Query selects layers: every given criterion must hold.
type Query struct {
	// Text matches, case-insensitively, every word somewhere in the id, title,
	// description, tags, capabilities or package names.
	Text string
	// Kind, when set, is the layer kind.
	Kind string
	// Tags must all be among the layer's tags.
	Tags []string
}

// ErrBadQuery is matched by Search's error for an unknown kind or a malformed tag.
var ErrBadQuery = errors.New("bad layer query")

// Search returns the layers that match q, in catalog order.
func (c *Catalog) Search(q Query) ([]Layer, error) {
	if q.Kind != "" && !slices.Contains(Kinds(), q.Kind) {
		return nil, fmt.Errorf("%w: kind %q is not one of %s", ErrBadQuery, q.Kind, strings.Join(Kinds(), ", "))
	}
	for _, t := range q.Tags {
		if !tagPattern.MatchString(t) {
			return nil, fmt.Errorf("%w: tag %q must match %s", ErrBadQuery, t, tagPattern)
		}
	}
	if len(q.Text) > 200 {
		return nil, fmt.Errorf("%w: search text over 200 bytes", ErrBadQuery)
	}
	words := strings.Fields(strings.ToLower(q.Text))
	out := []Layer{}
	for _, l := range c.layers {
		if q.Kind != "" && l.Kind != q.Kind {
			continue
		}
		if !containsAll(l.Tags, q.Tags) {
			continue
		}
		hay := strings.ToLower(strings.Join(append(append(append([]string{l.ID, l.Title, l.Description}, l.Tags...), l.Provides...), l.Packages...), "\n"))
		match := true
		for _, w := range words {
			if !strings.Contains(hay, w) {
				match = false
				break
			}
		}
		if match {
			out = append(out, clone(l))
		}
	}
	return out, nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func clone(l Layer) Layer {
	l.Tags = slices.Clone(l.Tags)
	l.Packages = slices.Clone(l.Packages)
	l.Files = recipe.CloneFiles(l.Files)
	l.Services = recipe.Services{Enable: slices.Clone(l.Services.Enable), Disable: slices.Clone(l.Services.Disable)}
	l.Users = cloneUsers(l.Users)
	if l.Keyboard != nil {
		k := *l.Keyboard
		l.Keyboard = &k
	}
	l.KernelCmdline = slices.Clone(l.KernelCmdline)
	l.Scripts = slices.Clone(l.Scripts)
	l.Requires = slices.Clone(l.Requires)
	l.Conflicts = slices.Clone(l.Conflicts)
	l.Provides = slices.Clone(l.Provides)
	return l
}

func cloneUsers(us []recipe.User) []recipe.User {
	if us == nil {
		return nil
	}
	out := make([]recipe.User, len(us))
	for i, u := range us {
		u.Groups = slices.Clone(u.Groups)
		u.SSHKeys = slices.Clone(u.SSHKeys)
		out[i] = u
	}
	return out
}
